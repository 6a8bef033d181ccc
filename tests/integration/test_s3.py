"""The agent on an s3:// bucket: a real S3 server (s3rver behind tests/s3/serve.js, which checks
every request's Signature V4) under the kcat and confluent-kafka suites, then S3 outages during
produce and during fetch."""
import struct
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import kwire
from harness import Agent, consume_all, expect
from s3server import S3Server
from test_kcat import consume, lines_for, produce, round_trip_every_codec
from test_python import wait_futures

PREFIX = "some/prefix"
KAFKA_STORAGE_ERROR = 56


def s3_agent(s3, workdir=None):
    return Agent(workdir=workdir, env=s3.agent_env(PREFIX)).start()


def restarted(agent, s3):
    """A new agent on the same metadata and bucket: its read cache is cold."""
    agent.stop()
    agent.remove_steering_pins()
    return s3_agent(s3, workdir=agent.workdir)


def no_signature_failures(s3):
    st = s3.stats()
    expect(st["signatureFailures"] == 0, "the S3 server rejected %d signatures; its log:\n%s"
           % (st["signatureFailures"], s3.log_text()[-3000:]))


def test_s3_every_codec_round_trips_10000_messages():
    s3 = S3Server()
    a = s3_agent(s3)
    try:
        round_trip_every_codec(a, "s3-codec-")
        stored = s3.objects()
        expect(stored and all(k.startswith(PREFIX + "/objects/") for k in stored),
               "objects in the bucket: %r" % stored[:10])
        st = s3.stats()
        expect(st["methods"].get("PUT", 0) >= len(stored), "PUTs %r for %d objects" % (st, len(stored)))
        no_signature_failures(s3)
    finally:
        a.cleanup()
        s3.cleanup()


def test_s3_keyed_20000_on_4_partitions():
    s3 = S3Server()
    a = s3_agent(s3)
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        res = wait_futures(admin.create_topics([NewTopic("s3-keyed", num_partitions=4, replication_factor=1)]))
        expect(res["s3-keyed"] is None, "create: %r" % res["s3-keyed"])
        n = 20000
        acked, errors = {}, []

        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(n):
            key = b"key-%d" % (i % 331)
            p.produce("s3-keyed", key=key, value=b"value-%d-%s" % (i, key), on_delivery=on_delivery)
            if i % 5000 == 0:
                p.poll(0)
        expect(p.flush(60) == 0, "messages not delivered")
        expect(not errors, "delivery errors: %r" % errors[:5])
        expect(len(acked) == n, "acked %d distinct offsets for %d messages" % (len(acked), n))
        parts = {part for part, _ in acked}
        expect(parts == {0, 1, 2, 3}, "partitions used: %r" % parts)

        # A fresh agent on the same metadata: its cache is cold, every byte comes from S3.
        a = restarted(a, s3)
        seen, _ = consume_all(a.bootstrap, "s3-keyed", 4, n, record=lambda m: (m.key(), m.value()))
        expect(len(seen) == n, "consumed %d of %d" % (len(seen), n))
        for k, v in acked.items():
            expect(seen.get(k) == v, "at %r: produced %r, consumed %r" % (k, v, seen.get(k)))
        expect(s3.stats()["methods"].get("GET", 0) > 0, "no GET reached S3")
        no_signature_failures(s3)
    finally:
        a.cleanup()
        s3.cleanup()


def test_s3_outage_during_produce_loses_no_acked_message():
    """S3 down for 5 s while an acks=all producer runs: the agent answers retriable errors (never an
    ack for data it could not store), then recovers by itself; every acked message is there."""
    s3 = S3Server()
    a = s3_agent(s3)
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        res = wait_futures(admin.create_topics([NewTopic("s3-outage", num_partitions=2, replication_factor=1)]))
        expect(res["s3-outage"] is None, "create: %r" % res["s3-outage"])
        acked, errors, acked_at = {}, [], []

        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                acked[(msg.partition(), msg.offset())] = msg.value()
                acked_at.append(time.time())

        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5, "retry.backoff.ms": 200})
        stop = threading.Event()
        sent = [0]

        def produce_loop():
            while not stop.is_set():
                p.produce("s3-outage", key=b"k%d" % (sent[0] % 17), value=b"v-%08d" % sent[0], on_delivery=on_delivery)
                sent[0] += 1
                p.poll(0)
                time.sleep(0.002)

        t = threading.Thread(target=produce_loop)
        t.start()
        try:
            time.sleep(2)
            before_outage = len(acked)
            s3.stop()
            down_at = time.time()
            time.sleep(5)
            up_at = time.time()
            s3.start()
            time.sleep(3)
        finally:
            stop.set()
            t.join()
        left = p.flush(120)
        expect(left == 0, "%d messages never delivered after S3 came back" % left)
        expect(not errors, "delivery errors (librdkafka should have retried): %r" % errors[:5])
        expect(len(acked) == sent[0], "acked %d of %d" % (len(acked), sent[0]))
        expect(before_outage > 0, "nothing acked before the outage")
        log = a.log_text()
        expect("KAFKA_STORAGE_ERROR" in log, "the agent never answered a storage error during the outage")
        # Nothing can be acked while S3 is down (a second of grace for answers already on their way).
        during_outage = sum(1 for t in acked_at if down_at + 1 < t < up_at)
        expect(during_outage == 0, "%d messages acked while S3 was down" % during_outage)
        expect(a.alive(), "agent died")

        seen, _ = consume_all(a.bootstrap, "s3-outage", 2, len(acked), record=lambda m: (m.key(), m.value()))
        missing = [k for k in acked if k not in seen]
        expect(not missing, "%d acked messages missing, e.g. %r" % (len(missing), missing[:5]))
        for k, v in acked.items():
            expect(seen[k][1] == v, "at %r: produced %r, consumed %r" % (k, v, seen[k][1]))
        no_signature_failures(s3)
        print("    %d messages, %d acked during the 5 s outage" % (len(acked), during_outage))
    finally:
        a.cleanup()
        s3.cleanup()


def fetch_v4(sock, corr, topic, partition, offset, max_wait_ms=100):
    body = (struct.pack(">iiiib", -1, max_wait_ms, 1, 1 << 20, 0) + struct.pack(">i", 1) + kwire.string(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 1 << 20))
    sock.sendall(kwire.request(1, 4, corr, body))
    frame = kwire.read_frame(sock, timeout=30)
    expect(frame is not None, "connection closed by the agent")
    got_corr, _throttle, ntopics = struct.unpack_from(">iii", frame, 0)
    expect(got_corr == corr and ntopics == 1, "fetch response header: %r" % frame[:16])
    pos = 12
    (tl,) = struct.unpack_from(">h", frame, pos)
    pos += 2 + tl
    nparts, part, err, hwm = struct.unpack_from(">iihq", frame, pos)
    pos += 18 + 8  # ... and last_stable_offset
    (naborted,) = struct.unpack_from(">i", frame, pos)
    pos += 4 + max(naborted, 0) * 16
    (rlen,) = struct.unpack_from(">i", frame, pos)
    records = frame[pos + 4:pos + 4 + rlen] if rlen > 0 else b""
    return err, hwm, records


def test_s3_get_failure_is_a_partition_error_not_a_dropped_connection():
    s3 = S3Server()
    a = s3_agent(s3)
    try:
        lines = lines_for("cold", 500, seed=7)
        produce(a, "s3-cold", lines)
        # Restart: a cold cache, so the fetch below must read from S3.
        a = restarted(a, s3)
        s3.stop()
        sock = kwire.connect(a.port)
        try:
            t0 = time.time()
            err, hwm, records = fetch_v4(sock, 1, "s3-cold", 0, 0)
            took = time.time() - t0
            expect(err == KAFKA_STORAGE_ERROR, "fetch with S3 down: error %d, %d bytes of records" % (err, len(records)))
            expect(hwm == 500, "high watermark %d" % hwm)
            expect(took < 10, "the failing fetch took %.1fs" % took)
            # The same connection still serves requests.
            sock.sendall(kwire.request(18, 0, 2, b""))
            frame = kwire.read_frame(sock)
            expect(frame is not None and struct.unpack_from(">i", frame)[0] == 2, "ApiVersions after the error")

            s3.start()
            deadline = time.time() + 15
            while True:
                err, hwm, records = fetch_v4(sock, 3, "s3-cold", 0, 0)
                if err == 0 or time.time() > deadline:
                    break
                time.sleep(0.3)
            expect(err == 0 and len(records) > 61, "fetch after S3 came back: error %d, %d bytes" % (err, len(records)))
            expect(struct.unpack_from(">q", records)[0] == 0, "first batch base offset")
        finally:
            sock.close()
        got = consume(a, "s3-cold", "-o", "beginning")
        expect(got == lines, "consumed %d of %d after recovery" % (len(got), len(lines)))
        expect("failed after" in a.log_text(), "no final S3 failure line in the agent log")
        print("    the fetch with S3 down answered KAFKA_STORAGE_ERROR in %.2fs" % took)
        no_signature_failures(s3)
    finally:
        a.cleanup()
        s3.cleanup()


def test_s3_virtual_hosted_style_bucket():
    """BUCKET.s3.localhost:PORT (curl resolves *.localhost to loopback; s3rver reads the bucket
    from the Host header)."""
    s3 = S3Server(service_endpoint="localhost")
    env = s3.agent_env("vh", path_style=False, endpoint="s3.localhost:%d" % s3.port)
    a = Agent(env=env).start()
    try:
        lines = lines_for("vh", 2000, seed=3)
        produce(a, "s3-vhost", lines, "zstd")
        expect(consume(a, "s3-vhost", "-o", "beginning") == lines, "round trip")
        expect(s3.objects("vh/objects/"), "no objects under vh/")
        no_signature_failures(s3)
    finally:
        a.cleanup()
        s3.cleanup()

