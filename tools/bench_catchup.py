#!/usr/bin/python3
"""make bench, part 3: a consumer catching up from a remote object store.

One agent writes BENCH_CATCHUP_MESSAGES 1 KiB messages (8 partitions, paced so that every 5 ms
flush makes a small object, as a steady stream does) to s3rver with PostgreSQL as the metadata
store, then stops. A fresh agent (nothing cached) serves kcat reading everything from offset 0
(catch-up), then again (warm cache). Baseline in the same run: the same objects fetched by plain
sequential whole-object GETs on one connection. Prints numbers and ratios; asserts nothing."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import catchup  # noqa: E402


def main():
    n = int(os.environ.get("BENCH_CATCHUP_MESSAGES", "200000"))
    print("== catch-up reads from s3rver: %d x 1 KiB messages, 8 partitions" % n)
    r = catchup.run(n=n, agent_bin=os.environ.get("SLUICE_BIN"))
    print("catch-up %.1f MB/s (%.2fx sequential GETs at %.1f MB/s), warm cache %.1f MB/s (%.2fx); %d consumer "
          "errors, %d storage errors"
          % (r["catchup_mbs"], r["catchup_mbs"] / r["baseline_mbs"], r["baseline_mbs"], r["warm_mbs"],
             r["warm_mbs"] / r["baseline_mbs"], len(r["errors"]), len(r["storage_errors"])))


if __name__ == "__main__":
    main()
