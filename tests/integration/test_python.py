"""python3-confluent-kafka (librdkafka) against one agent: admin, a keyed 100k-message produce
with acks=all, and a consume by partition assignment that checks every key, value and offset."""
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import Agent, consume_all, expect


def wait_futures(futures, timeout=30):
    out = {}
    for name, f in futures.items():
        try:
            f.result(timeout)
            out[name] = None
        except Exception as e:  # KafkaException carrying the broker's error
            out[name] = e.args[0] if e.args else e
    return out


def test_admin_create_and_delete_topics():
    a = Agent().start()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        res = wait_futures(admin.create_topics([
            NewTopic("orders", num_partitions=4, replication_factor=1),
            NewTopic("bad name!", num_partitions=1, replication_factor=1),
            NewTopic("configs", 2, 1, config={"retention.ms": "1000"}),
            NewTopic("badconfig", 1, 1, config={"no.such.config": "1"}),
        ]))
        expect(res["orders"] is None, "orders: %r" % res["orders"])
        expect(res["configs"] is None, "configs: %r" % res["configs"])
        expect(res["bad name!"].code() == KafkaError.TOPIC_EXCEPTION, "bad name: %r" % res["bad name!"])
        expect(res["badconfig"].code() == KafkaError.INVALID_CONFIG, "bad config: %r" % res["badconfig"])
        res = wait_futures(admin.create_topics([NewTopic("orders", 4, 1)]))
        expect(res["orders"].code() == KafkaError.TOPIC_ALREADY_EXISTS, "duplicate: %r" % res["orders"])
        md = admin.list_topics(timeout=10)
        expect(len(md.topics["orders"].partitions) == 4, "orders has %d partitions" % len(md.topics["orders"].partitions))
        res = wait_futures(admin.delete_topics(["orders", "never-existed"]))
        expect(res["orders"] is None, "delete orders: %r" % res["orders"])
        expect(res["never-existed"].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, "delete unknown: %r" % res["never-existed"])
        md = admin.list_topics(timeout=10)
        expect("orders" not in md.topics, "orders still listed after delete")
        # Re-created after deletion: a new, empty topic.
        res = wait_futures(admin.create_topics([NewTopic("orders", 2, 1)]))
        expect(res["orders"] is None, "re-create: %r" % res["orders"])
    finally:
        a.cleanup()


def test_produce_100k_keyed_then_consume_by_assignment():
    a = Agent().start()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        res = wait_futures(admin.create_topics([NewTopic("keyed", num_partitions=4, replication_factor=1)]))
        expect(res["keyed"] is None, "create: %r" % res["keyed"])

        n = 100_000
        acked = {}  # (partition, offset) -> (key, value)
        errors = []

        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5,
                      "queue.buffering.max.messages": 200000})
        t0 = time.time()
        for i in range(n):
            key = b"key-%d" % (i % 977)
            p.produce("keyed", key=key, value=b"value-%d-%s" % (i, key), on_delivery=on_delivery)
            if i % 10000 == 0:
                p.poll(0)
        left = p.flush(60)
        expect(left == 0, "%d messages not delivered" % left)
        expect(not errors, "delivery errors: %r" % errors[:5])
        expect(len(acked) == n, "acked %d distinct offsets for %d messages" % (len(acked), n))
        produce_s = time.time() - t0

        # Same key -> same partition, offsets per partition contiguous from 0.
        per_part = {}
        for (part, off) in acked:
            per_part.setdefault(part, []).append(off)
        for part, offs in per_part.items():
            offs.sort()
            expect(offs == list(range(len(offs))), "partition %d offsets not contiguous" % part)
        key_part = {}
        for (part, _), (key, _) in acked.items():
            expect(key_part.setdefault(key, part) == part, "key %r in two partitions" % key)

        seen, _ = consume_all(a.bootstrap, "keyed", 4, n, record=lambda m: (m.key(), m.value()))
        expect(len(seen) == n, "consumed %d of %d" % (len(seen), n))
        for k, v in acked.items():
            expect(seen.get(k) == v, "at %r: produced %r, consumed %r" % (k, v, seen.get(k)))
        print("    produced %d keyed messages (acks=all) in %.1fs" % (n, produce_s))
    finally:
        a.cleanup()


def test_topic_configs_change_produce():
    """message.timestamp.type=LogAppendTime stamps the broker's time; cleanup.policy=compact
    rejects records without a key (INVALID_RECORD); max.message.bytes caps a batch."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    a = Agent().start()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        res = wait_futures(admin.create_topics([
            NewTopic("appendtime", 1, 1, config={"message.timestamp.type": "LogAppendTime"}),
            NewTopic("compacted", 1, 1, config={"cleanup.policy": "compact"}),
            NewTopic("small", 1, 1, config={"max.message.bytes": "2000"}),
        ]))
        expect(all(v is None for v in res.values()), "create: %r" % res)

        results = {}

        def report(err, msg):
            results[(msg.topic(), msg.key())] = err

        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "retries": 0})
        before = int(time.time() * 1000)
        p.produce("appendtime", b"v", key=b"a", timestamp=1000, on_delivery=report)
        p.produce("compacted", b"v", key=b"k", on_delivery=report)
        p.flush(10)
        p.produce("compacted", b"no key", on_delivery=report)
        p.flush(10)
        p.produce("small", b"x" * 5000, key=b"big", on_delivery=report)
        p.flush(10)
        after = int(time.time() * 1000)
        expect(results[("appendtime", b"a")] is None, "appendtime: %r" % results[("appendtime", b"a")])
        expect(results[("compacted", b"k")] is None, "keyed: %r" % results[("compacted", b"k")])
        err = results[("compacted", None)]
        expect(err is not None and err.code() == KafkaError.INVALID_RECORD, "unkeyed on compacted: %r" % err)
        err = results[("small", b"big")]
        expect(err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, "too large: %r" % err)

        c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "ts", "enable.auto.commit": False})
        c.assign([TopicPartition("appendtime", 0, 0)])
        msgs = c.consume(1, timeout=10)
        c.close()
        expect(len(msgs) == 1, "consumed %d" % len(msgs))
        ts_type, ts = msgs[0].timestamp()
        expect(ts_type == TIMESTAMP_LOG_APPEND_TIME, "timestamp type %d" % ts_type)
        expect(before <= ts <= after, "log append time %d not within [%d, %d]" % (ts, before, after))
    finally:
        a.cleanup()
