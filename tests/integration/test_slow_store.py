"""Slow and silent stores: the event loop never waits on them. A PostgreSQL that stops answering
(SIGSTOP: connections stay up, nothing comes back) must not stall clients that need nothing from
it, producers must hear a retriable error rather than silence; an object store that takes 2 s per
PUT must slow producers down (TCP back-pressure) without errors, within the memory cap."""
import os
import re
import socket
import struct
import threading
import time

import kwire
import pgserver
import s3server
from harness import ROOT, Agent, consume_all, expect, kcat

OPTIMISED_BIN = os.environ.get("SLUICE_OPTIMISED_BIN", os.path.join(ROOT, "build", "sluice"))
RETRIABLE = {7, 56}  # REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR


def worker_pids(agent):
    return [int(p) for p in re.findall(r"worker \d+ \(pid (\d+)\) serving", agent.log_text())]


def rss_kib(pids):
    total = 0
    for p in pids:
        with open("/proc/%d/status" % p) as f:
            total += int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
    return total


def timed(sock, frame):
    t0 = time.monotonic()
    sock.sendall(frame)
    resp = kwire.read_frame(sock, timeout=15)
    expect(resp is not None, "connection closed instead of an answer")
    return (time.monotonic() - t0) * 1000.0


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def test_postgres_silent_10s_metadata_answers_and_produce_gets_retriable_errors():
    """PostgreSQL frozen for 10 s: ApiVersions and Metadata (cached topic, and the whole list) keep
    answering within 50 ms p99; a produce with timeout_ms 2000 gets REQUEST_TIMED_OUT instead of
    silence; once the store is back, produce works again."""
    pg = pgserver.PgServer()
    a = Agent(env={"SLUICE_METADATA_URL": pg.url, "SLUICE_WORKERS": "1"})
    try:
        a.start()
        kcat(a, "-P", "-t", "hot", "-p", "0", input=b"before\n")
        records = kwire.record_batch([b"during"])
        with kwire.connect(a.port) as s:  # the topic is in the worker's cache now
            timed(s, kwire.request(3, 1, 1, kwire.metadata_v1_body(["hot"])))
        pg.freeze()
        produced = {}

        def produce():
            with kwire.connect(a.port) as p:
                t0 = time.monotonic()
                p.sendall(kwire.request(0, 3, 9, kwire.produce_v3_body("hot", 0, records, acks=-1, timeout_ms=2000)))
                frame = kwire.read_frame(p, timeout=15)
                produced["after_ms"] = (time.monotonic() - t0) * 1000.0
                produced["result"] = kwire.parse_produce_v3_response(frame)[1] if frame else None

        t = threading.Thread(target=produce)
        t.start()
        lat = {"ApiVersions": [], "Metadata(hot)": [], "Metadata(all)": []}
        frames = {"ApiVersions": kwire.request(18, 0, 2, b""),
                  "Metadata(hot)": kwire.request(3, 1, 3, kwire.metadata_v1_body(["hot"])),
                  "Metadata(all)": kwire.request(3, 1, 4, struct.pack(">i", -1))}
        try:
            with kwire.connect(a.port) as s:
                end = time.monotonic() + 10
                while time.monotonic() < end:
                    for name, frame in frames.items():
                        lat[name].append(timed(s, frame))
                    time.sleep(0.01)
        finally:
            pg.thaw()
        t.join(20)
        for name, v in lat.items():
            print("    store silent 10 s: %-14s %4d answers, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                  % (name, len(v), percentile(v, 0.5), percentile(v, 0.99), max(v)))
        print("    produce (timeout_ms 2000) answered after %.0f ms: %r" % (produced.get("after_ms", -1),
                                                                           produced.get("result")))
        for name, v in lat.items():
            expect(len(v) >= 100, "%s: only %d answers in 10 s" % (name, len(v)))
            expect(percentile(v, 0.99) < 50, "%s p99 %.1f ms while the store was silent" % (name, percentile(v, 0.99)))
        res = produced.get("result")
        expect(res, "the produce got no answer")
        expect(res[0][2] in RETRIABLE, "produce answered %r, not a retriable error" % (res,))
        expect(produced["after_ms"] < 5000, "the produce waited %.0f ms (timeout_ms 2000)" % produced["after_ms"])
        # The store is back: produce succeeds again (the first tries may still see the backlog).
        deadline = time.time() + 30
        ok = None
        while time.time() < deadline and not ok:
            with kwire.connect(a.port) as p:
                p.sendall(kwire.request(0, 3, 10, kwire.produce_v3_body("hot", 0, records, acks=-1, timeout_ms=5000)))
                frame = kwire.read_frame(p, timeout=15)
                if frame and kwire.parse_produce_v3_response(frame)[1][0][2] == 0:
                    ok = frame
        expect(ok, "produce did not recover within 30 s of the store coming back")
    finally:
        a.cleanup()
        pg.cleanup()


def test_slow_object_store_slows_producers_within_the_memory_cap():
    """Every PUT takes 2 s. A producer pushing as fast as it can for 8 s is slowed down, not failed:
    the worker's RSS stays within the produce buffer cap (plus one object being uploaded, the read
    cache and the process's baseline), and every acknowledged record is there afterwards. Memory is
    measured on the optimised build (AddressSanitizer's allocator keeps freed memory in quarantine)."""
    from confluent_kafka import Producer

    s3 = s3server.S3Server()
    cap_mib, batch_mib, cache_mib = 32, 4, 8
    a = Agent(env={"SLUICE_WORKERS": "1", "SLUICE_PRODUCE_BUFFER_BYTES": "%dMiB" % cap_mib,
                   "SLUICE_BATCH_MAX_BYTES": "%dMiB" % batch_mib, "SLUICE_FETCH_CACHE_BYTES": "%dMiB" % cache_mib,
                   "SLUICE_BATCH_TIMEOUT": "20ms", **s3.agent_env("slow")})
    a.bin = OPTIMISED_BIN
    try:
        a.start()
        kcat(a, "-P", "-t", "flood", "-p", "0", input=b"warm\n")
        pids = worker_pids(a)
        base = rss_kib(pids)
        s3.delay(2000, method="PUT")
        acked, errors = [], []
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(pids))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1000000,
                      "message.timeout.ms": 120000, "request.timeout.ms": 60000,
                      "queue.buffering.max.kbytes": 65536})
        value = os.urandom(1024)
        sent = full = 0
        end = time.monotonic() + 8
        try:
            while time.monotonic() < end:
                try:
                    p.produce("flood", value + b"%d" % sent, partition=0,
                              on_delivery=lambda e, m: errors.append(e) if e else acked.append(m.offset()))
                    sent += 1
                except BufferError:  # its 64 MiB queue is full: the agent takes less than it pushes
                    full += 1
                    p.poll(0.05)
                p.poll(0)
            left = p.flush(120)
        finally:
            stop.set()
            sampler.join()
        s3.clear()
        over = peak[0] - base
        bound = (cap_mib + 2 * batch_mib + cache_mib + 24) * 1024  # + allocator and thread stacks
        print("    PUTs answered after 2 s: %d records sent in 8 s (queue full %d times), %d acked, %d errors, %d left; worker RSS %d MiB "
              "-> peak %d MiB (+%d MiB; cap %d MiB, bound +%d MiB)"
              % (sent, full, len(acked), len(errors), left, base // 1024, peak[0] // 1024, over // 1024, cap_mib,
                 bound // 1024))
        expect(not errors, "producer errors: %r" % errors[:3])
        expect(left == 0, "%d records never delivered" % left)
        expect(full > 0 and sent * 1024 > (2 * cap_mib) << 20,
               "no pressure: the producer pushed %d records and never filled its queue" % sent)
        expect(over < bound, "worker RSS grew %d MiB, beyond the bound of %d MiB" % (over // 1024, bound // 1024))
        seen, _ = consume_all(a.bootstrap, "flood", 1, len(acked) + 1)
        missing = [o for o in acked if (0, o) not in seen]
        expect(not missing, "%d acknowledged records missing, e.g. offsets %r" % (len(missing), missing[:5]))
    finally:
        a.cleanup()
        s3.cleanup()
