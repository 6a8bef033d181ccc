"""A consumer catching up from a remote object store through an agent with an empty cache: every
message arrives, no partition or storage error, at no less than half of what s3rver serves as plain
sequential whole-object GETs in the same run. Measured on the optimised build (under
AddressSanitizer the agent, not the store, would be what is measured)."""
import os

import catchup
from harness import ROOT, expect

OPTIMISED_BIN = os.environ.get("SLUICE_OPTIMISED_BIN", os.path.join(ROOT, "build", "sluice"))


def test_fresh_agent_serves_a_catching_up_consumer_from_s3():
    r = catchup.run(n=200000, size=1024, partitions=8, agent_bin=OPTIMISED_BIN)
    expect(not r["errors"], "consumer errors: %r" % r["errors"][:5])
    expect(not r["storage_errors"], "storage errors in the agent log: %r" % r["storage_errors"][:5])
    ratio = r["catchup_mbs"] / r["baseline_mbs"]
    expect(ratio >= 0.5, "catch-up at %.1f MB/s is %.2fx s3rver's sequential GETs (%.1f MB/s), below 0.5x"
           % (r["catchup_mbs"], ratio, r["baseline_mbs"]))
