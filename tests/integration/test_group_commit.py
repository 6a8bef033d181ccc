"""Group commit: a flush starts as soon as the store is idle, so batch-timeout is an upper bound on
how long produce data waits, not a delay. With batch-timeout 2 s, acks=all produces at low load
are answered in far less than 2 s (one put + one commit), and the data is all there."""
import os
import time

from confluent_kafka import Producer

import kwire
from harness import Agent, consume_all, expect, kcat

SLOW_TIMER = {"SLUICE_BATCH_TIMEOUT": "2s", "SLUICE_WORKERS": "1"}


def objects(agent):
    root = os.path.join(agent.workdir, "objects")
    return [f for _, _, files in os.walk(root) for f in files if f.endswith(".obj")]


def test_acks_all_answered_long_before_batch_timeout():
    """Twenty sequential acks=all produces on one connection, batch-timeout 2 s: each answered in
    < 1 s (the old policy waited for the timer: >= 2 s each), offsets consecutive, records
    readable."""
    a = Agent(env=SLOW_TIMER)
    try:
        a.start()
        kcat(a, "-P", "-t", "gc", "-p", "0", input=b"first\n")  # creates the topic
        took = []
        with kwire.connect(a.port) as s:
            for i in range(20):
                records = kwire.record_batch([b"m%d" % i])
                t0 = time.monotonic()
                s.sendall(kwire.request(0, 3, 100 + i, kwire.produce_v3_body("gc", 0, records, acks=-1,
                                                                             timeout_ms=10000)))
                frame = kwire.read_frame(s, timeout=15)
                took.append((time.monotonic() - t0) * 1000.0)
                expect(frame is not None, "no produce answer")
                _, parts = kwire.parse_produce_v3_response(frame)
                expect(parts == [("gc", 0, 0, i + 1)], "produce %d answered %r" % (i, parts))
        print("acks=all produce with batch-timeout 2s: max %.0f ms, median %.0f ms"
              % (max(took), sorted(took)[len(took) // 2]))
        expect(max(took) < 1000, "a produce waited %.0f ms (batch-timeout is 2 s): %r" % (max(took), took))
        seen, dup = consume_all(a.bootstrap, "gc", 1, 21, timeout=30)
        expect(len(seen) == 21 and dup == 0, "read %d records back (%d duplicates), want 21" % (len(seen), dup))
        expect(seen[(0, 0)] == b"first" and seen[(0, 20)] == b"m19", "records out of place: %r" % seen)
        expect(a.sanitizer_report() is None, "sanitizer: %s" % a.sanitizer_report())
    finally:
        a.cleanup()


def test_librdkafka_idempotent_producer_under_load_groups_flushes():
    """A real client (librdkafka, idempotent, acks=all, 8 partitions) sends 20000 records of 1 KiB
    as fast as it can with batch-timeout 2 s: every record is acknowledged in well under 2 s on
    average, everything is read back exactly once, and the flushes are grouped: fewer objects than
    produce requests would make."""
    a = Agent(env=dict(SLOW_TIMER, SLUICE_DEFAULT_PARTITIONS="8"))
    try:
        a.start()
        kcat(a, "-P", "-t", "gcload", "-p", "0", input=b"x\n")
        n, payload = 20000, b"v" * 1024
        p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 1, "broker.address.family": "v4"})
        errors, latencies = [], []
        sent_at = {}

        def delivered(err, msg):
            if err:
                errors.append(err)
            else:
                latencies.append(time.monotonic() - sent_at[msg.key()])

        t0 = time.monotonic()
        for i in range(n):
            key = b"%d" % i
            sent_at[key] = time.monotonic()
            while True:
                try:
                    p.produce("gcload", value=payload, key=key, partition=i % 8, on_delivery=delivered)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        left = p.flush(60)
        elapsed = time.monotonic() - t0
        expect(left == 0 and not errors, "%d undelivered, errors %r" % (left, errors[:3]))
        mean = sum(latencies) / len(latencies)
        nobj = len(objects(a))
        print("20000 x 1 KiB idempotent acks=all in %.1f s, mean ack latency %.0f ms, %d objects"
              % (elapsed, mean * 1000, nobj))
        expect(mean < 1.0, "mean acknowledgement latency %.0f ms with batch-timeout 2 s" % (mean * 1000))
        seen, dup = consume_all(a.bootstrap, "gcload", 8, n + 1, timeout=60)
        expect(len(seen) == n + 1 and dup == 0, "read %d records back (%d duplicates), want %d" % (len(seen), dup, n + 1))
        expect(0 < nobj < n // 8, "%d objects for %d records: flushes were not grouped" % (nobj, n))
        expect(a.sanitizer_report() is None, "sanitizer: %s" % a.sanitizer_report())
    finally:
        a.cleanup()
