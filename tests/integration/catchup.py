"""Catch-up reads from a remote object store, measured (test_catchup.py checks them, make bench
prints them): one agent writes N messages to s3rver in 5 ms flushes and stops; a fresh agent (empty
read cache) then serves a consumer reading everything from offset 0; then the same consumer again
(warm cache). The baseline, in the same run: the same objects read with plain sequential
whole-object GETs (one keep-alive connection, SigV4-signed like the agent's)."""
import datetime
import hashlib
import hmac
import http.client
import os
import time

import pgserver
import s3server
from harness import Agent, expect


def _sign_get(host, path, key=s3server.ACCESS_KEY, secret=s3server.SECRET_KEY, region="us-east-1"):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": empty, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["GET", path, "", "".join("%s:%s\n" % (h, headers[h]) for h in sorted(headers)), signed,
                           empty])
    scope = "%s/%s/s3/aws4_request" % (day, region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        key, scope, signed, sig)
    return headers


def sequential_gets(s3, keys):
    """(bytes, seconds) to GET every key whole, one after the other on one connection."""
    conn = http.client.HTTPConnection(s3.host, s3.port, timeout=30)
    total = 0
    t0 = time.monotonic()
    for key in keys:
        path = "/%s/%s" % (s3.bucket, key)
        conn.request("GET", path, headers=_sign_get(s3.endpoint, path))
        r = conn.getresponse()
        body = r.read()
        expect(r.status == 200, "GET %s: %d %s" % (key, r.status, body[:200]))
        total += len(body)
    elapsed = time.monotonic() - t0
    conn.close()
    return total, elapsed


def produce(bootstrap, topic, n, size, partitions, rate_mbs):
    """n messages at about rate_mbs: at a producer's pace, every 5 ms flush makes a small object
    (as a steady stream does), not the few large ones a burst makes."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "queue.buffering.max.kbytes": 262144})
    errors = []
    value = os.urandom(size)
    t0 = time.monotonic()
    for i in range(n):
        if i % 100 == 0:
            ahead = t0 + i * size / (rate_mbs * 1e6) - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                p.produce(topic, value, partition=i % partitions, on_delivery=lambda e, m: e and errors.append(e))
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    expect(p.flush(120) == 0, "produce did not finish")
    expect(not errors, "produce errors: %r" % errors[:3])


def consume_kcat(bootstrap, topic, n, partitions, timeout=300):
    """(payload bytes, seconds, errors) for kcat (librdkafka in C: the client costs little) to read
    every partition from offset 0 to its end."""
    import subprocess
    t0 = time.monotonic()
    p = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%S\\n",
                        "-X", "fetch.wait.max.ms=100"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    elapsed = time.monotonic() - t0
    sizes = [int(x) for x in p.stdout.split()]
    errors = [l for l in p.stderr.decode(errors="replace").splitlines() if "ERROR" in l or "error" in l]
    expect(p.returncode == 0, "kcat failed (%d): %s" % (p.returncode, p.stderr[-500:]))
    expect(len(sizes) >= n, "kcat read %d of %d messages" % (len(sizes), n))
    return sum(sizes), elapsed, errors


def consume(bootstrap, topic, n, partitions, timeout=300):
    """(payload bytes, seconds, errors) to read n messages from offset 0 of every partition."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "catchup", "enable.auto.commit": False})
    got = nbytes = 0
    errors = []
    t0 = time.monotonic()
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    deadline = t0 + timeout
    while got < n and time.monotonic() < deadline:
        for m in c.consume(10000, timeout=0.2):
            if m.error():
                errors.append(m.error())
                continue
            got += 1
            nbytes += len(m.value())
    elapsed = time.monotonic() - t0
    c.close()
    expect(got >= n, "consumed only %d of %d messages in %d s" % (got, n, timeout))
    return nbytes, elapsed, errors


def run(n=200000, size=1024, partitions=8, rate_mbs=20, agent_bin=None, log=print):
    """Returns {"baseline_mbs", "catchup_mbs", "warm_mbs", "objects", "object_bytes", "errors"}."""
    pg = pgserver.PgServer()
    s3 = s3server.S3Server()
    agents = []
    try:
        env = {"SLUICE_METADATA_URL": pg.url, "SLUICE_WORKERS": "2", "SLUICE_BATCH_TIMEOUT": "5ms",
               **s3.agent_env("catchup")}

        def agent():
            a = Agent(env=env)
            if agent_bin:
                a.bin = agent_bin
            agents.append(a)
            a.start()
            a.wait_log("all 2 workers serving")
            return a

        writer = agent()
        t0 = time.monotonic()
        produce(writer.bootstrap, "catchup", n, size, partitions, rate_mbs)
        log("    wrote %d x %d B to s3rver in 5 ms flushes in %.1f s (paced at %d MB/s)"
            % (n, size, time.monotonic() - t0, rate_mbs))
        writer.stop()
        keys = s3.objects("catchup/")
        nbytes, secs = sequential_gets(s3, keys)
        baseline = nbytes / secs / 1e6
        log("    s3rver, sequential whole-object GETs: %d objects, %.1f MB in %.2f s = %.1f MB/s"
            % (len(keys), nbytes / 1e6, secs, baseline))
        reader = agent()  # a fresh agent: nothing cached
        cb, cs, cerr = consume_kcat(reader.bootstrap, "catchup", n, partitions)
        wb, ws, werr = consume_kcat(reader.bootstrap, "catchup", n, partitions)
        catchup, warm = cb / cs / 1e6, wb / ws / 1e6
        log("    fresh agent, catch-up consumer: %.1f MB in %.2f s = %.1f MB/s (%.2fx the GETs), %d errors"
            % (cb / 1e6, cs, catchup, catchup / baseline, len(cerr)))
        log("    same agent again, warm cache:   %.1f MB in %.2f s = %.1f MB/s (%.2fx the GETs), %d errors"
            % (wb / 1e6, ws, warm, warm / baseline, len(werr)))
        storage_errors = [l for l in reader.log_text().splitlines()
                          if "STORAGE_ERROR" in l or ("reading" in l and "failed" in l) or "shorter than" in l]
        stats = s3.stats()
        log("    the reader's GETs: %d (s3rver served %d requests in all)"
            % (stats["methods"].get("GET", 0) - len(keys), stats["requests"]))
        reader.stop()
        return {"baseline_mbs": baseline, "catchup_mbs": catchup, "warm_mbs": warm, "objects": len(keys),
                "object_bytes": nbytes, "errors": [str(e) for e in cerr + werr], "storage_errors": storage_errors}
    finally:
        for a in agents:
            a.cleanup()
        s3.cleanup()
        pg.cleanup()
