"""Compacted topics (cleanup.policy=compact): the lifecycle job keeps each key's latest record, as
Kafka's log cleaner does. 100,000 updates over 1,000 keys plus 100 tombstones compact to the 1,000
latest records, byte-identical at their delivery offsets (confluent-kafka, kcat, kafkajs and @platformatic/kafka read them);
tombstones stay until delete.retention.ms passed, then go; a consumer inside a gap gets the next
record; ListOffsets by timestamp still answers; a record without a key is refused. file:// + SQLite
and PostgreSQL + s3rver."""
import json
import os
import subprocess
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import harness
from harness import Agent, expect, kcat
from test_retention import create, remote_stores, wait_for

KEYS, UPDATES, DELETED = 1000, 100000, 100
DELETE_RETENTION_MS = 30000
FAST = {"SLUICE_RETENTION_CHECK_INTERVAL": "1s", "SLUICE_OBJECT_DELETE_GRACE": "1s"}


def produce(agent, topic, records):
    """records: [(key, value)]; returns {offset: (key, value, timestamp)} from the delivery reports."""
    p = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 20, "acks": "all",
                  "compression.type": "lz4"})
    got, errors = {}, []

    def done(err, m):
        if err:
            errors.append(err)
        else:
            got[m.offset()] = (m.key(), m.value(), m.timestamp()[1])

    for i, (k, v) in enumerate(records):
        p.produce(topic, v, key=k, partition=0, on_delivery=done)
        if i % 10000 == 0:
            p.poll(0)
    expect(p.flush(60) == 0 and not errors, "produce to %s: %r" % (topic, errors[:3]))
    return got


def read_all(agent, topic, offset=0):
    """Every record from offset up to the high watermark: [(offset, key, value)]."""
    c = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": "check", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    try:
        _low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, offset)])
        out, deadline = [], time.time() + 60
        while time.time() < deadline and (not out or out[-1][0] < high - 1):
            for m in c.consume(10000, timeout=0.5):
                expect(m.error() is None, "consume error %r" % m.error())
                out.append((m.offset(), m.key(), m.value()))
        return out
    finally:
        c.close()


def latest(produced):
    """{key: (offset, value)} of the last record produced for each key."""
    last = {}
    for off in sorted(produced):
        k, v, _ts = produced[off]
        last[k] = (off, v)
    return last


def expected(produced, with_tombstones):
    return sorted((off, k, v) for k, (off, v) in latest(produced).items() if v is not None or with_tombstones)


def check_compaction(agent):
    topic = "compacted"
    create(agent, topic, cleanup_policy="compact", delete_retention_ms=DELETE_RETENTION_MS,
           min_cleanable_dirty_ratio="0.01")
    # A record without a key is refused (Kafka: INVALID_RECORD), nothing stored.
    p = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 0, "retries": 0})
    errs = []
    p.produce(topic, b"no key", partition=0, on_delivery=lambda err, m: errs.append(err))
    p.flush(30)
    expect(len(errs) == 1 and errs[0] is not None and errs[0].code() == KafkaError.INVALID_RECORD,
           "keyless record: %r" % errs)

    updates = [(b"key-%04d" % (i % KEYS), b"value-%06d-" % i + os.urandom(8).hex().encode()) for i in range(UPDATES)]
    produced = produce(agent, topic, updates)
    produced.update(produce(agent, topic, [(b"key-%04d" % i, None) for i in range(DELETED)]))
    tombstone_ts = max(ts for k, v, ts in produced.values() if v is None)
    expect(len(produced) == UPDATES + DELETED and min(produced) == 0, "delivery offsets: %d" % len(produced))
    time.sleep(4)  # older than the few seconds a chunk must be before it is cleaned
    produced.update(produce(agent, topic, [(b"tail-1", b"t1")]))  # the active chunk: never cleaned

    want = expected(produced, with_tombstones=True)
    expect(len(want) == KEYS + 1, "expected records: %d" % len(want))
    state = {}

    def compacted():
        state["got"] = read_all(agent, topic)
        return state["got"] == want
    wait_for(compacted, "compacted to each key's latest record", timeout=60)
    expect(time.time() * 1000 < tombstone_ts + DELETE_RETENTION_MS, "the check came after delete.retention.ms")
    expect(sum(1 for _o, _k, v in state["got"] if v is None) == DELETED, "tombstones before delete.retention.ms")
    expect("key compaction: %s-0" % topic in agent.log_text(), "no key compaction log line")

    # kcat reads the same records (keys, values, offsets; tombstones as NULL).
    lines = kcat(agent, "-C", "-t", topic, "-o", "beginning", "-e", "-Z", "-f", "%o %k %s\n").decode().splitlines()
    expect(lines == ["%d %s %s" % (o, k.decode(), "NULL" if v is None else v.decode()) for o, k, v in want],
           "kcat: %d lines, first %r" % (len(lines), lines[:3]))

    # kafkajs and @platformatic/kafka too.
    node = os.path.join(harness.ROOT, "tests", "js", "node_modules", ".bin", "node")
    js = subprocess.run([node, os.path.join(harness.ROOT, "tests", "js", "kafkajs_compacted.js"), agent.bootstrap,
                         topic, str(want[-1][0])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
    expect(js.returncode == 0, "kafkajs: %s" % js.stderr.decode()[-2000:])
    got_js = [tuple(r) for r in json.loads(js.stdout.decode().strip().splitlines()[-1])]
    expect(got_js == [(o, k.decode(), None if v is None else v.decode()) for o, k, v in want],
           "kafkajs: %d records, first %r" % (len(got_js), got_js[:3]))

    plt = subprocess.run([node, os.path.join(harness.ROOT, "tests", "js", "platformatic_compacted.mjs"),
                          agent.bootstrap, topic, str(want[-1][0])], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=90)
    expect(plt.returncode == 0, "@platformatic/kafka: %s" % plt.stderr.decode()[-2000:])
    got_plt = [tuple(r) for r in json.loads(plt.stdout.decode().strip().splitlines()[-1])]
    expect(got_plt == [(o, k.decode(), None if v is None else v.decode()) for o, k, v in want],
           "@platformatic/kafka: %d records, first %r" % (len(got_plt), got_plt[:3]))

    # A consumer positioned inside a gap gets the next record.
    kept = [o for o, _k, _v in want]
    gap = next(o for o in range(kept[-1]) if o not in set(kept) and o + 1 not in set(kept))
    after = read_all(agent, topic, gap)
    expect(after and after[0][0] == min(o for o in kept if o > gap), "from gap offset %d: %r" % (gap, after[:1]))

    # ListOffsets by timestamp: the tail record's timestamp finds it; 0 finds the first record kept.
    c = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": "times"})
    tail_off = max(produced)
    found = c.offsets_for_times([TopicPartition(topic, 0, produced[tail_off][2])], timeout=10)
    first = c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)
    c.close()
    expect(found[0].offset == tail_off, "by time (tail): %r, want %d" % (found[0].offset, tail_off))
    expect(first[0].offset == kept[0], "by time (0): %r, want %d" % (first[0].offset, kept[0]))

    # Once the oldest tombstone kept expires the partition is cleaned again, though not dirty enough
    # for min.cleanable.dirty.ratio (one small record since), and the tombstones go.
    time.sleep(max(0, (tombstone_ts + DELETE_RETENTION_MS) / 1000 - time.time()) + 1)
    produced.update(produce(agent, topic, [(b"tail-2", b"t2")]))
    want = expected(produced, with_tombstones=False)
    expect(len(want) == KEYS - DELETED + 2, "expected records after: %d" % len(want))
    wait_for(compacted, "tombstones removed after delete.retention.ms", timeout=60)


def test_compacted_topic_file_sqlite():
    a = Agent(env=FAST).start()
    try:
        check_compaction(a)
        expect(not a.sanitizer_report(), "sanitizer: %s" % a.sanitizer_report())
    finally:
        a.cleanup()


def test_compacted_topic_pg_s3():
    pg, s3 = remote_stores()
    a = None
    try:
        a = Agent(env=dict(FAST, SLUICE_METADATA_URL=pg.url, **s3.agent_env("kc"))).start()
        check_compaction(a)
        expect(not a.sanitizer_report(), "sanitizer: %s" % a.sanitizer_report())
    finally:
        if a:
            a.cleanup()
        s3.cleanup()
        pg.cleanup()


def test_everything_deleted_leaves_an_empty_range():
    """Every record of the cleanable range goes (a key and its expired tombstone): the range
    becomes an empty chunk that reads skip, from the beginning and from inside it."""
    a = Agent(env=FAST).start()
    try:
        create(a, "emptied", cleanup_policy="compact", delete_retention_ms=0, min_cleanable_dirty_ratio="0.01")
        produce(a, "emptied", [(b"x", b"1")])
        produce(a, "emptied", [(b"x", None)])
        time.sleep(4)
        produce(a, "emptied", [(b"y", b"2")])
        a.wait_log("key compaction: emptied-0 offsets 0-1", timeout=30)
        expect(read_all(a, "emptied") == [(2, b"y", b"2")], "from the beginning: %r" % read_all(a, "emptied"))
        expect(read_all(a, "emptied", 1) == [(2, b"y", b"2")], "from offset 1: %r" % read_all(a, "emptied", 1))
        lines = kcat(a, "-C", "-t", "emptied", "-o", "beginning", "-e", "-f", "%o %k %s\n").decode().splitlines()
        expect(lines == ["2 y 2"], "kcat: %r" % lines)
        expect(not a.sanitizer_report(), "sanitizer: %s" % a.sanitizer_report())
    finally:
        a.cleanup()


def test_producer_base_offset_is_ignored():
    """A producer's baseOffset (outside the CRC) is not stored: a huge one would otherwise read as a
    gap past the chunk (readers take a stored baseOffset as the batch's offset)."""
    import kwire
    import struct
    a = Agent(env=FAST).start()
    try:
        create(a, "plain")
        s = kwire.connect(a.port)
        try:
            for i in range(2):
                batch = bytearray(kwire.record_batch([b"a%d" % i, b"b%d" % i, b"c%d" % i]))
                struct.pack_into(">q", batch, 0, 1 << 62)
                s.sendall(kwire.request(0, 3, 1 + i, kwire.produce_v3_body("plain", 0, bytes(batch))))
                _corr, parts = kwire.parse_produce_v3_response(kwire.read_frame(s))
                expect(parts[0][2] == 0 and parts[0][3] == 3 * i, "produce %d: %r" % (i, parts))
            s.sendall(kwire.request(1, 4, 9, kwire.fetch_v4_body("plain", 0, 0, max_wait_ms=100)))
            _corr, err, hwm, records = kwire.parse_fetch_v4_response(kwire.read_frame(s))
        finally:
            s.close()
        expect(err == 0 and hwm == 6, "fetch: error %d, high watermark %d" % (err, hwm))
        expect(kwire.batches(records) == [(0, 2), (3, 5)], "batches: %r" % kwire.batches(records))
    finally:
        a.cleanup()
