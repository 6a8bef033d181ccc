"""Retention and garbage collection (worker 0's lifecycle job, under a lease in the metadata store):
retention.ms drops old data (log start, ListOffsets EARLIEST, OFFSET_OUT_OF_RANGE below it, the
objects leave the bucket), deleted topics' objects and never-committed objects are collected after
the grace period, and nothing else is ever deleted. file:// + SQLite, and s3rver + PostgreSQL with
two agents sharing the job."""
import os
import shutil
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import harness
import kwire
from harness import Agent, consume_all, expect, kcat
from test_python import wait_futures

OFFSET_OUT_OF_RANGE = 1
# Compaction off: these tests check that retention and GC delete exactly the objects they should,
# and compaction legitimately replaces the kept topics' small objects too (test_compaction.py checks
# that it loses nothing).
FAST = {"SLUICE_RETENTION_CHECK_INTERVAL": "500ms", "SLUICE_OBJECT_DELETE_GRACE": "1s",
        "SLUICE_COMPACTION_ENABLED": "false"}


def create(agent, topic, partitions=1, **configs):
    admin = AdminClient({"bootstrap.servers": agent.bootstrap})
    res = wait_futures(admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                                     config={k.replace("_", "."): str(v) for k, v in configs.items()})]))
    expect(res[topic] is None, "create %s: %r" % (topic, res[topic]))


def produce(agent, topic, values, timestamp_ms=0, partition=0):
    """Produces and waits for every ack; each flush is its own objects (linger 0)."""
    p = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 0, "acks": "all"})
    errors = []
    for v in values:
        p.produce(topic, v, partition=partition, timestamp=timestamp_ms,
                  on_delivery=lambda err, m: err and errors.append(err))
    expect(p.flush(30) == 0 and not errors, "produce to %s: %r" % (topic, errors[:3]))


def watermarks(agent, topic, partition=0):
    c = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def file_objects(agent):
    root = os.path.join(agent.workdir, "objects", "objects")
    return set(os.listdir(root)) if os.path.isdir(root) else set()


def wait_for(cond, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("never happened within %ds: %s" % (timeout, what))


def fetch_error(agent, topic, offset):
    s = kwire.connect(agent.port)
    try:
        s.sendall(kwire.request(1, 4, 7, kwire.fetch_v4_body(topic, 0, offset, max_wait_ms=100)))
        _corr, err, _hwm, _records = kwire.parse_fetch_v4_response(kwire.read_frame(s))
        return err
    finally:
        s.close()


def check_retention(agent, objects_now):
    """retention.ms=2000: 50 old records go, 5 records stamped in the future stay; a topic
    without retention keeps everything. objects_now() lists the bucket's object keys."""
    create(agent, "expiring", retention_ms=2000)
    create(agent, "kept")
    produce(agent, "kept", [b"k%d" % i for i in range(50)])
    kept_objects = objects_now()
    produce(agent, "expiring", [b"old%d" % i for i in range(50)])
    old_objects = objects_now() - kept_objects
    expect(old_objects, "no objects written for the old records")
    expect(watermarks(agent, "expiring") == (0, 50), "watermarks before: %r" % (watermarks(agent, "expiring"),))
    # Stamped a minute ahead: still inside retention.ms when the old ones expire.
    produce(agent, "expiring", [b"new%d" % i for i in range(5)], timestamp_ms=int(time.time() * 1000) + 60000)

    wait_for(lambda: watermarks(agent, "expiring") == (50, 55), "ListOffsets EARLIEST moved to 50")
    out = kcat(agent, "-C", "-t", "expiring", "-o", "beginning", "-e", "-f", "%o %s\n").decode().split("\n")
    expect([l for l in out if l] == ["%d new%d" % (50 + i, i) for i in range(5)], "kcat from beginning: %r" % out)
    expect(fetch_error(agent, "expiring", 10) == OFFSET_OUT_OF_RANGE, "fetch below the log start")
    wait_for(lambda: not (old_objects & objects_now()), "the expired objects left the bucket: %r"
             % sorted(old_objects & objects_now()))
    expect(kept_objects <= objects_now(), "an object of the kept topic was deleted")
    seen, _ = consume_all(agent.bootstrap, "kept", 1, 50, timeout=30)
    expect(sorted(seen.values()) == sorted(b"k%d" % i for i in range(50)), "kept topic: %d records" % len(seen))


def test_retention_ms_file_sqlite():
    a = Agent(env=dict(FAST, SLUICE_WORKERS="2")).start()
    try:
        check_retention(a, lambda: file_objects(a))
        expect("took the lease" in a.log_text(), "worker 0 never took the lifecycle lease")
    finally:
        a.cleanup()


def test_deleted_topic_objects_collected():
    a = Agent(env=FAST).start()
    try:
        create(a, "doomed", partitions=2)
        create(a, "survivor")
        produce(a, "survivor", [b"s%d" % i for i in range(20)])
        survivor = file_objects(a)
        produce(a, "doomed", [b"d%d" % i for i in range(20)])
        produce(a, "doomed", [b"d%d" % i for i in range(20)], partition=1)
        doomed = file_objects(a) - survivor
        expect(doomed, "no objects for the doomed topic")
        time.sleep(2)  # several rounds: nothing referenced goes
        expect(file_objects(a) == survivor | doomed, "an object was deleted while its topic was alive")
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        res = wait_futures(admin.delete_topics(["doomed"]))
        expect(res["doomed"] is None, "delete: %r" % res["doomed"])
        wait_for(lambda: not (doomed & file_objects(a)), "the deleted topic's objects left the bucket")
        expect(survivor <= file_objects(a), "an object of the surviving topic was deleted")
        seen, _ = consume_all(a.bootstrap, "survivor", 1, 20, timeout=30)
        expect(len(seen) == 20, "survivor: %d of 20 records" % len(seen))
    finally:
        a.cleanup()


def test_uncommitted_objects_collected_after_grace():
    # A 10-minute grace period: the object "PUT an hour ago" goes, the one PUT now stays.
    a = Agent(env={"SLUICE_RETENTION_CHECK_INTERVAL": "200ms", "SLUICE_OBJECT_DELETE_GRACE": "10m"}).start()
    try:
        create(a, "committed")
        produce(a, "committed", [b"c%d" % i for i in range(10)])
        committed = file_objects(a)
        root = os.path.join(a.workdir, "objects", "objects")
        now = int(time.time() * 1000)
        stale = "%013d-crashed-w0-000001.obj" % (now - 3600 * 1000)
        fresh = "%013d-inflight-w0-000001.obj" % now
        for name in (stale, fresh):
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\0" * 128)
        wait_for(lambda: stale not in file_objects(a), "the stale uncommitted object was collected")
        expect(fresh in file_objects(a), "a fresh uncommitted object was deleted")
        expect(committed <= file_objects(a), "a committed object was deleted")
        expect("deleted object objects/%s (never committed)" % stale in a.log_text(), "no log line for the delete")
    finally:
        a.cleanup()


def test_nothing_else_deleted_while_jobs_run():
    """Acked records of a topic without retention all read back after many rounds of retention
    and collection on another topic, with a consumer reading concurrently."""
    a = Agent(env={"SLUICE_RETENTION_CHECK_INTERVAL": "100ms", "SLUICE_OBJECT_DELETE_GRACE": "200ms",
                   "SLUICE_WORKERS": "2"}).start()
    try:
        create(a, "churn", retention_ms=300)
        create(a, "precious", partitions=2)
        stop = threading.Event()
        acked = set()
        read = {}

        def churn():
            p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 0})
            while not stop.is_set():
                p.produce("churn", b"x" * 100)
                p.flush(5)

        def reader():
            c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "concurrent", "auto.offset.reset": "earliest",
                          "fetch.wait.max.ms": 50})
            c.subscribe(["precious"])
            while not stop.is_set():
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    read[(m.partition(), m.offset())] = m.value()
            c.close()

        threads = [threading.Thread(target=churn), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 2, "acks": "all"})

        def on_delivery(err, m):
            if err is None:
                acked.add((m.partition(), m.offset(), m.value()))

        for i in range(3000):
            p.produce("precious", b"p%d" % i, partition=i % 2, on_delivery=on_delivery)
            if i % 100 == 99:
                p.flush(30)
                time.sleep(0.1)
        p.flush(30)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(30)
        expect(len(acked) == 3000, "%d of 3000 acked" % len(acked))
        seen, _ = consume_all(a.bootstrap, "precious", 2, 3000, timeout=60)
        expect({(k[0], k[1], v) for k, v in seen.items()} == acked, "read back %d of %d acked" % (len(seen), len(acked)))
        expect(all(read.get((pt, off), val) == val for pt, off, val in acked), "the concurrent reader saw other data")
        expect(watermarks(a, "churn")[0] > 0, "retention never ran on the churn topic")
        expect("(unreferenced)" in a.log_text(), "no object was collected meanwhile")
    finally:
        a.cleanup()


def remote_stores():
    """PostgreSQL and s3rver are required here: missing them fails the test."""
    import pgserver
    import s3server
    try:
        pg = pgserver.PgServer()
    except harness.Skip as e:
        raise AssertionError("PostgreSQL is required: %s" % e)
    try:
        s3 = s3server.S3Server()
    except BaseException as e:
        pg.cleanup()
        raise AssertionError("s3rver is required: %s" % e)
    return pg, s3


def s3_put(s3, key, data):
    """A PUT signed by curl (SigV4), as an agent that died before its commit left it."""
    import hashlib
    import s3server
    url = "http://%s/%s/%s" % (s3.endpoint, s3.bucket, key)
    harness.run(["curl", "-sS", "-f", "-X", "PUT", "-H", "x-amz-content-sha256: " + hashlib.sha256(data).hexdigest(),
                 "--data-binary", "@-", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user",
                 s3server.ACCESS_KEY + ":" + s3server.SECRET_KEY, url], input=data)
    expect(key in s3.objects(), "the PUT of %s did not store it" % key)


def test_two_agents_pg_s3_share_the_job_and_hand_it_over():
    pg, s3 = remote_stores()
    agents = []
    try:
        env = dict(FAST, SLUICE_METADATA_URL=pg.url, SLUICE_WORKERS="1", SLUICE_SLOTS="8",
                   SLUICE_HEARTBEAT_TIMEOUT="2s", **s3.agent_env("lc"))
        agents = [Agent(env=env).start() for _ in range(2)]
        first, second = agents

        # An object PUT an hour ago and never committed (a crash between PUT and commit): collected
        # by the bucket listing (ListObjectsV2) whenever it runs, so not one of the objects
        # check_retention watches.
        stale = "lc/objects/%013d-crashed-w0-000001.obj" % (int(time.time() * 1000) - 3600 * 1000)

        def s3_objects():
            return set(k for k in s3.objects("lc/objects/") if k != stale)

        s3_put(s3, stale, b"\0" * 64)
        check_retention(first, s3_objects)
        wait_for(lambda: stale not in s3.objects("lc/"), "the uncommitted object on S3 was collected")
        holders = [a for a in agents if "took the lease" in a.log_text()]
        expect(len(holders) == 1, "agents that took the lease: %d" % len(holders))
        holder = holders[0]
        other = second if holder is first else first
        # No object deleted twice: each delete is logged once, by the holder.
        lines = [l for a in agents for l in a.log_text().splitlines() if "gc: deleted object" in l]
        keys = [l.split("gc: deleted object ")[1].split(" ")[0] for l in lines]
        expect(keys and len(keys) == len(set(keys)), "deletes: %r" % keys)

        holder.kill9()
        other.wait_log("took the lease", timeout=15)  # the dead holder's lease expired
        time.sleep(2.5)  # the dead agent's slots move to the live one (heartbeat timeout)
        create(other, "after-handover", retention_ms=1000)
        produce(other, "after-handover", [b"h%d" % i for i in range(10)])
        wait_for(lambda: watermarks(other, "after-handover") == (10, 10), "retention after the hand-over")
        # A clean stop gives the lease up at once (no waiting for its expiry).
        expect(pg.psql(pg.dbname, "SELECT count(*) FROM job_leases") == "1", "the live holder's lease")
        other.cleanup()
        expect(pg.psql(pg.dbname, "SELECT count(*) FROM job_leases") == "0", "lease left after a clean stop")
    finally:
        for a in agents:
            if a.alive():
                a.cleanup()
            else:
                shutil.rmtree(a.workdir, ignore_errors=True)
                a.remove_steering_pins()  # a killed agent leaves its pinned maps and link
        s3.cleanup()
        pg.cleanup()


def test_delete_records_moves_the_log_start():
    a = Agent(env=FAST).start()
    try:
        create(a, "trimmed", partitions=2)
        before = file_objects(a)
        produce(a, "trimmed", [b"a%d" % i for i in range(10)])
        first = file_objects(a) - before
        produce(a, "trimmed", [b"b%d" % i for i in range(10)])
        produce(a, "trimmed", [b"c%d" % i for i in range(10)])

        def delete_records(parts):
            s = kwire.connect(a.port)
            try:
                s.sendall(kwire.request(21, 1, 5, kwire.delete_records_v1_body("trimmed", parts)))
                return kwire.parse_delete_records_v1_response(kwire.read_frame(s))
            finally:
                s.close()

        expect(delete_records([(0, 15), (0, 31), (7, 0)]) == [(0, 15, 0), (0, -1, OFFSET_OUT_OF_RANGE), (7, -1, 3)],
               "DeleteRecords answers")
        expect(watermarks(a, "trimmed") == (15, 30), "watermarks after: %r" % (watermarks(a, "trimmed"),))
        out = kcat(a, "-C", "-t", "trimmed", "-p", "0", "-o", "beginning", "-e", "-f", "%o %s\n").decode().split()
        expect(out[:2] == ["15", "b5"] and len(out) == 30, "kcat from beginning: %r" % out[:6])
        expect(fetch_error(a, "trimmed", 3) == OFFSET_OUT_OF_RANGE, "fetch below the new log start")
        wait_for(lambda: not (first & file_objects(a)), "the first chunk's object left the bucket")
        expect(delete_records([(0, -1), (1, -1)]) == [(0, 30, 0), (1, 0, 0)], "DeleteRecords to the high watermark")
        expect(delete_records([(0, 3)]) == [(0, 30, 0)], "the log start never moves down")
    finally:
        a.cleanup()


def test_retention_bytes_keeps_the_newest_chunks():
    a = Agent(env=FAST).start()
    try:
        create(a, "sized", retention_bytes=1)  # keeps only what it must: the newest chunk
        for r in "abcde":
            produce(a, "sized", [b"%s%d" % (r.encode(), i) for i in range(10)])
        wait_for(lambda: watermarks(a, "sized")[0] >= 40, "retention.bytes moved the log start")
        low, high = watermarks(a, "sized")
        expect(high == 50 and low < 50, "watermarks %r: the newest chunk stays" % ((low, high),))
        out = kcat(a, "-C", "-t", "sized", "-o", "beginning", "-e", "-f", "%o %s\n").decode().split("\n")
        expect([l for l in out if l] == ["%d e%d" % (o, o - 40) for o in range(low, 50)], "kcat: %r" % out)
    finally:
        a.cleanup()
