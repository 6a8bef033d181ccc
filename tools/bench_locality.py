#!/usr/bin/python3
"""make bench, part 2: locality behind an L4 load balancer, with and without steering.

Three agent hosts (two workers each) in network namespaces behind HAProxy in round robin, one
PostgreSQL and one s3rver (tests/integration/netbed.py); four producers write 1 KiB messages to 24
partitions at a fixed rate through the balancer, then a consumer reads everything back. For each
setting it prints: the share of each partition's bytes written by the partition's owner worker,
the workers that wrote each partition, objects written per partition per second, produce latency
(acks=all), consumer throughput, and the read-cache hit rate: the share of the chunks a consumer
read from the beginning that its fetches found in the serving worker's memory, not in the object
store (1 - GETs the store answered during the read / chunks read).

Steering on: XDP forwards every slot connection to the owner's host and sk_lookup to the owner
worker. Steering off: SO_REUSEPORT, no XDP (any worker of whichever host the balancer picked).
Needs root. Prints numbers; asserts nothing about speed."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

RATE = int(os.environ.get("BENCH_LOCALITY_RATE", "500"))
SECONDS = int(os.environ.get("BENCH_LOCALITY_SECONDS", "10"))
SIZE = 1024
PARTITIONS = 24

SETTINGS = [
    ("steering on  (XDP l2)", dict(balancer="haproxy", xdp="l2")),
    ("steering off (reuseport)", dict(balancer="haproxy", xdp=None, env={"SLUICE_STEERING": "off"})),
    ("steering on  (XDP ipip, routed)", dict(balancer="haproxy", xdp="ipip", routed=True)),
]


def measure(bed):
    produced = bed.client_run("produce", "--topic", "bench", "--create", "--partitions", str(PARTITIONS),
                              "--producers", "4", "--messages", str(RATE * SECONDS), "--rate", str(RATE),
                              "--size", str(SIZE), timeout=SECONDS * 10 + 120)
    want = RATE * SECONDS + 4 * PARTITIONS  # and the warm-up messages
    if produced["errors"] or len(produced["acked"]) != want:
        raise SystemExit("bench: %d of %d acknowledged, errors %r" % (len(produced["acked"]), want,
                                                                      produced["errors"][:3]))
    loc = bed.locality("bench", produced["seconds"], bed.owners("bench", PARTITIONS))
    gets = bed.store_gets()
    got = bed.client_run("consume", "--topic", "bench", "--partitions", str(PARTITIONS),
                         "--want", str(len(produced["acked"])), timeout=600)
    if len(got["records"]) != len(produced["acked"]):
        raise SystemExit("bench: consumed %d of %d" % (len(got["records"]), len(produced["acked"])))
    hits = max(0.0, 1.0 - (bed.store_gets() - gets) / max(1, bed.chunks("bench")))
    bed.stop_agents()
    return produced, loc, got, hits


def main():
    if os.geteuid() != 0:
        print("locality bench: skipped (needs root for network namespaces and BPF)")
        return 0
    import netbed
    print("locality behind a load balancer: 3 agent hosts x 2 workers, HAProxy round robin, %d partitions, "
          "4 producers, %d B messages at %d msg/s for %d s, acks=all; PostgreSQL + s3rver"
          % (PARTITIONS, SIZE, RATE, SECONDS))
    print("  %-32s %13s %9s %13s %19s %14s %12s" % ("", "owner's share", "writers", "objects/p/s",
                                                    "produce p50/p99 ms", "consume MB/s", "cache hits"))
    for name, args in SETTINGS:
        bed = netbed.NetBed(**args)
        try:
            produced, loc, got, hits = measure(bed)
        finally:
            bed.cleanup()
        lat = produced["latency_ms"]
        mb = len(got["records"]) * SIZE / 1e6 / max(got["seconds"], 1e-3)
        print("  %-32s %12.1f%% %9.2f %13.1f %9.1f / %7.1f %14.1f %11.1f%%"
              % (name, 100 * loc["owner_share"], loc["writers"], loc["objects_per_partition_s"], lat["p50"],
                 lat["p99"], mb, 100.0 * hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
