"""Compaction of small objects (worker 0's lifecycle round): a log of many tiny chunks (one per
flush) is rewritten into a few big objects, one chunk per run, and a consumer sees exactly the same
records (offsets, keys, values, headers, timestamps). file:// + SQLite, s3rver + PostgreSQL, and
producers and consumers running through many rounds of compaction and garbage collection."""
import os
import sqlite3
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from harness import Agent, consume_all, expect, kcat
from test_metrics import scrape, total
from test_retention import create, file_objects, remote_stores, wait_for

PARTITIONS = 4
RECORDS = 2000
# Every produce request its own object (and so one small chunk per partition); no compaction yet.
TINY = {"SLUICE_BATCH_TIMEOUT": "1ms", "SLUICE_COMPACTION_ENABLED": "false", "SLUICE_WORKERS": "1"}
COMPACT = {"SLUICE_BATCH_TIMEOUT": "1ms", "SLUICE_COMPACTION_ENABLED": "true", "SLUICE_COMPACTION_MIN_AGE": "1s",
           "SLUICE_RETENTION_CHECK_INTERVAL": "1s", "SLUICE_OBJECT_DELETE_GRACE": "2s", "SLUICE_WORKERS": "1"}


def produce_many(agent, topic):
    """RECORDS records with keys, headers and distinct timestamps, 8 per produce round trip."""
    p = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 0, "acks": "all"})
    errors = []
    base = int(time.time() * 1000) - 60000
    for i in range(RECORDS):
        p.produce(topic, b"value-%d-" % i + b"x" * (i % 50), key=b"key-%d" % (i % 97), partition=i % PARTITIONS,
                  timestamp=base + i, headers=[("h", b"%d" % i), ("n", b"x" * (i % 3))],
                  on_delivery=lambda err, m: err and errors.append(err))
        if i % 8 == 7:
            p.flush(30)
    expect(p.flush(30) == 0 and not errors, "produce: %r" % errors[:3])


def records(agent, topic):
    """{(partition, offset): (key, value, headers, timestamp)} read from offset 0 of every partition."""
    seen, dup = consume_all(agent.bootstrap, topic, PARTITIONS, RECORDS, timeout=60,
                            record=lambda m: (m.key(), m.value(), tuple(m.headers() or ()), m.timestamp()))
    expect(dup == 0 and len(seen) == RECORDS, "read %d of %d records, %d twice" % (len(seen), RECORDS, dup))
    return seen


def kcat_lines(agent, topic):
    out = kcat(agent, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p|%o|%k|%s|%T|%h\n").decode()
    return sorted(l for l in out.split("\n") if l)


def offsets_for_times(agent, topic, base):
    """ListOffsets by timestamp for a few timestamps past base in every partition (the time index)."""
    c = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": "times"})
    try:
        out = []
        for ts in (0, 5, 333, 1501, 10 ** 6):  # one partition once per request
            asks = [TopicPartition(topic, p, base + ts) for p in range(PARTITIONS)]
            out += [(tp.partition, tp.offset) for tp in c.offsets_for_times(asks, timeout=10)]
        return out
    finally:
        c.close()


def middle(agent, topic):
    """kcat from offsets inside what becomes one compacted chunk."""
    return [kcat(agent, "-C", "-t", topic, "-p", str(p), "-o", str(o), "-c", "3", "-e", "-f", "%o %k %s %T\n")
            for p, o in ((0, 7), (1, 101), (3, 450))]


def check_compaction(start_agent, objects_now, chunks_now):
    """start_agent(env) starts an agent on the same stores; objects_now()/chunks_now() count the
    bucket's objects and the store's chunks."""
    a = start_agent(TINY)
    try:
        create(a, "tiny", partitions=PARTITIONS)
        produce_many(a, "tiny")
        before = records(a, "tiny")
        before_kcat = kcat_lines(a, "tiny")
        expect(len(before_kcat) == RECORDS, "kcat read %d records" % len(before_kcat))
        base = min(v[3][1] for v in before.values())
        before_times = offsets_for_times(a, "tiny", base)
        expect(len(set(o for _, o in before_times)) > 5, "ListOffsets by time: %r" % before_times)
        before_middle = middle(a, "tiny")
    finally:
        rc = a.stop()
    expect(rc == 0 and not a.sanitizer_report(), "the first agent: exit %s, %s" % (rc, a.sanitizer_report()))
    objects0, chunks0 = len(objects_now()), chunks_now()
    expect(objects0 >= RECORDS // 8 and chunks0 >= RECORDS // 2,
           "not a log of tiny chunks: %d objects, %d chunks" % (objects0, chunks0))

    b = start_agent(COMPACT)
    try:
        wait_for(lambda: chunks_now() <= chunks0 // 20, "chunks dropped from %d" % chunks0, timeout=90)
        wait_for(lambda: len(objects_now()) <= objects0 // 20, "objects dropped from %d" % objects0, timeout=90)
        objects1, chunks1 = len(objects_now()), chunks_now()
        after = records(b, "tiny")
        expect(after == before, "records differ after compaction: %d of %d equal"
               % (sum(after.get(k) == v for k, v in before.items()), len(before)))
        expect(kcat_lines(b, "tiny") == before_kcat, "kcat reads other records after compaction")
        after_times = offsets_for_times(b, "tiny", base)
        expect(after_times == before_times, "ListOffsets by time: %r, before %r" % (after_times, before_times))
        expect(middle(b, "tiny") == before_middle, "reads from inside a compacted chunk differ")
        expect("compaction: wrote objects/" in b.log_text(), "no compaction log line")
        samples = scrape(int(b.env["SLUICE_HTTP_PORT"]))[0]
        expect(total(samples, "sluice_compactions_total") >= 1, "sluice_compactions_total")
        expect(total(samples, "sluice_chunks_compacted_total") >= chunks0 - chunks1, "sluice_chunks_compacted_total")
        expect(total(samples, "sluice_compaction_bytes_written_total") > 0, "sluice_compaction_bytes_written_total")
        print("compaction: %d objects / %d chunks -> %d objects / %d chunks" % (objects0, chunks0, objects1, chunks1))
    finally:
        b.cleanup()


def test_compaction_file_sqlite():
    first = Agent(env=TINY)
    db = os.path.join(first.workdir, "metadata.db")

    def start(env):
        return Agent(workdir=first.workdir, env=env).start()

    def chunks_now():
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as c:
            return c.execute("SELECT count(*) FROM chunks").fetchone()[0]

    check_compaction(start, lambda: file_objects(first), chunks_now)


def test_compaction_pg_s3():
    pg, s3 = remote_stores()
    workdir = Agent().workdir  # both agents' (their log is one file)
    try:
        def start(env):
            return Agent(workdir=workdir, env=dict(env, SLUICE_METADATA_URL=pg.url, **s3.agent_env("cp"))).start()

        check_compaction(start, lambda: set(s3.objects("cp/objects/")),
                         lambda: int(pg.psql(pg.dbname, "SELECT count(*) FROM chunks")))
    finally:
        s3.cleanup()
        pg.cleanup()


def test_nothing_lost_while_compacting():
    """Acked records are read back exactly once at their acked offsets, by a consumer reading
    through many rounds of compaction and garbage collection and by a fresh one afterwards."""
    env = dict(COMPACT, SLUICE_OBJECT_DELETE_GRACE="1s", SLUICE_WORKERS="2")
    a = Agent(env=env).start()
    try:
        create(a, "busy", partitions=PARTITIONS)
        stop = threading.Event()
        acked = {}
        read, dups = {}, [0]

        def reader():
            c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "during", "enable.auto.commit": False,
                          "fetch.wait.max.ms": 50})
            c.assign([TopicPartition("busy", p, 0) for p in range(PARTITIONS)])
            while not stop.is_set() or len(read) < len(acked):
                for m in c.consume(1000, timeout=0.2):
                    expect(m.error() is None, "consume error %r" % m.error())
                    dups[0] += (m.partition(), m.offset()) in read
                    read[(m.partition(), m.offset())] = m.value()
                if stop.is_set() and time.time() > stop_at[0] + 30:
                    break
            c.close()

        stop_at = [0.0]
        t = threading.Thread(target=reader)
        t.start()

        def on_delivery(err, m):
            if err is None:
                acked[(m.partition(), m.offset())] = m.value()

        p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 0, "acks": "all", "enable.idempotence": True,
                      "compression.type": "lz4"})
        end = time.time() + 12
        i = 0
        while time.time() < end:
            p.produce("busy", b"m%d" % i, partition=i % PARTITIONS, on_delivery=on_delivery)
            i += 1
            if i % 8 == 0:
                p.flush(30)
        p.flush(30)
        p = None  # closed before the agent stops (no reconnect noise)
        stop_at[0] = time.time()
        stop.set()
        t.join(60)
        expect(len(acked) == i, "%d of %d acked" % (len(acked), i))
        expect(dups[0] == 0 and read == acked, "the concurrent reader: %d of %d acked, %d twice, %d unexpected"
               % (sum(read.get(k) == v for k, v in acked.items()), len(acked), dups[0],
                  sum(k not in acked for k in read)))
        seen, dup = consume_all(a.bootstrap, "busy", PARTITIONS, len(acked), timeout=60)
        expect(dup == 0 and seen == acked, "a fresh reader: %d of %d acked, %d twice"
               % (sum(seen.get(k) == v for k, v in acked.items()), len(acked), dup))
        log = a.log_text()
        expect(log.count("compaction: wrote objects/") >= 2, "compaction ran %d times"
               % log.count("compaction: wrote objects/"))
        expect("(unreferenced)" in log, "no compacted object was collected meanwhile")
        print("nothing lost: %d records, %d compactions" % (len(acked), log.count("compaction: wrote objects/")))
    finally:
        a.cleanup()


def test_compaction_settings_checked():
    from test_config import agent_rc
    cases = [
        ({"SLUICE_COMPACTION_MAX_RUN_BYTES": "32MiB"}, "compaction-max-run-bytes must be between 1KiB and fetch-cache"),
        ({"SLUICE_COMPACTION_TARGET_BYTES": "512KiB"}, "compaction-target-bytes must be between"),
        ({"SLUICE_COMPACTION_SMALL_BYTES": "2MiB"}, "compaction-small-bytes must be between 1 and"),
        ({"SLUICE_COMPACTION_MIN_CHUNKS": "0"}, "invalid value '0' for SLUICE_COMPACTION_MIN_CHUNKS"),
        ({"SLUICE_COMPACTION_MIN_AGE": "soon"}, "invalid value 'soon' for SLUICE_COMPACTION_MIN_AGE"),
        ({"SLUICE_COMPACTION_ENABLED": "maybe"}, "invalid value 'maybe' for SLUICE_COMPACTION_ENABLED"),
    ]
    for env, want in cases:
        rc, err = agent_rc([], env)
        expect(rc == 2 and want in err, "%r: exit %d, %r" % (env, rc, err))
