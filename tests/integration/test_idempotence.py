"""Idempotent producers: InitProducerId and the sequence checks inside the commit. A producer with
enable.idempotence whose workers are killed mid-stream ends with every message stored exactly once;
by hand, a repeated batch gets its first offset and a sequence gap OUT_OF_ORDER_SEQUENCE_NUMBER."""
import collections
import os
import re
import signal
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kwire
import pgserver
from harness import ROOT, Agent, Skip, consume_all, expect, run

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
INVALID_RECORD = 87
PRODUCER_FENCED = 90


JS = os.path.join(ROOT, "tests", "js", "node_modules")
NODE = os.path.join(JS, ".bin", "node")

# kafkajs speaks InitProducerId v0-1 and Produce up to v7; @platformatic/kafka InitProducerId v3-5
# and Produce v7-11 (flexible). Each sends 50 batches of 10 to two partitions, idempotently.
KAFKAJS = r'''
const { Kafka, logLevel } = require(process.argv[1] + "/kafkajs");
(async () => {
  const kafka = new Kafka({ brokers: [process.argv[2]], logLevel: logLevel.ERROR });
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  for (let i = 0; i < 50; i++)
    await p.send({ topic: "idem-js", acks: -1,
                   messages: Array.from({ length: 10 }, (_, j) => ({ value: `kafkajs-${i}-${j}`, partition: j % 2 })) });
  await p.disconnect();
})().catch(e => { console.error(e); process.exit(1); });
'''
PLATFORMATIC = r'''
const { Producer, stringSerializers } = await import(process.argv[1] + "/@platformatic/kafka/dist/index.js");
const p = new Producer({ clientId: "plt", bootstrapBrokers: [process.argv[2]], idempotent: true,
                         serializers: stringSerializers });
for (let i = 0; i < 50; i++)
  await p.send({ acks: -1, messages: Array.from({ length: 10 },
                                                (_, j) => ({ topic: "idem-js", value: `plt-${i}-${j}`, partition: j % 2 })) });
await p.close();
'''


def init_producer(s, corr, version=0, **kw):
    body = kwire.init_producer_id_body(version, **kw)
    send = kwire.request if version < 2 else kwire.request_flex
    s.sendall(send(22, version, corr, body))
    return kwire.parse_init_producer_id_response(kwire.read_frame(s), version)


def produce(s, corr, topic, records):
    s.sendall(kwire.request(0, 3, corr, kwire.produce_v3_body(topic, 0, records)))
    _, parts = kwire.parse_produce_v3_response(kwire.read_frame(s))
    return parts[0][2], parts[0][3]  # error, base offset


def test_repeated_batch_same_offset_and_gap_refused():
    a = Agent().start()
    try:
        s = kwire.connect(a.port)
        s.sendall(kwire.request(3, 1, 1, kwire.metadata_v1_body(["idem-raw"])))  # auto-creates
        expect(kwire.read_frame(s) is not None, "no metadata answer")

        err, pid, epoch = init_producer(s, 2)
        expect(err == 0 and pid >= 0 and epoch == 0, "InitProducerId v0: %r" % ((err, pid, epoch),))
        err, pid2, _ = init_producer(s, 3, version=1)
        expect(err == 0 and pid2 != pid, "a second producer got %r (first %d)" % (pid2, pid))

        first = kwire.record_batch([b"a", b"b", b"c"], producer=(pid, 0, 0))
        expect(produce(s, 4, "idem-raw", first) == (0, 0), "first batch")
        expect(produce(s, 5, "idem-raw", first) == (0, 0), "the same batch again: not its first offset")
        second = kwire.record_batch([b"d", b"e"], producer=(pid, 0, 3))
        expect(produce(s, 6, "idem-raw", second) == (0, 3), "next batch not at offset 3")
        expect(produce(s, 7, "idem-raw", first) == (0, 0), "a retry of the one before the last")
        gap = kwire.record_batch([b"x"], producer=(pid, 0, 10))
        expect(produce(s, 8, "idem-raw", gap)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER, "a gap was not refused")
        two = kwire.record_batch([b"y"], producer=(pid, 0, 5)) + kwire.record_batch([b"z"], producer=(pid, 0, 6))
        expect(produce(s, 9, "idem-raw", two)[0] == INVALID_RECORD, "two idempotent batches in one partition")

        # Re-init (v3+): the epoch is bumped (a retry of that bump gets the same epoch); an older
        # epoch is fenced, then refused by Produce.
        err, got, epoch = init_producer(s, 10, version=4, producer_id=pid, epoch=0)
        expect((err, got, epoch) == (0, pid, 1), "re-init: %r" % ((err, got, epoch),))
        expect(init_producer(s, 11, version=4, producer_id=pid, epoch=0) == (0, pid, 1), "retried re-init")
        expect(init_producer(s, 11, version=4, producer_id=pid, epoch=1) == (0, pid, 2), "second re-init")
        expect(init_producer(s, 11, version=4, producer_id=pid, epoch=0)[0] == PRODUCER_FENCED, "v4 not fenced")
        expect(init_producer(s, 12, version=3, producer_id=pid, epoch=0)[0] == INVALID_PRODUCER_EPOCH, "v3")
        expect(init_producer(s, 13, version=4, transactional_id="tx-1")[0] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
               "a transactional id was not refused")
        new_epoch = kwire.record_batch([b"f"], producer=(pid, 2, 0))
        expect(produce(s, 14, "idem-raw", new_epoch) == (0, 5), "the new epoch's first batch")
        old_epoch = kwire.record_batch([b"g"], producer=(pid, 1, 5))
        expect(produce(s, 15, "idem-raw", old_epoch)[0] == INVALID_PRODUCER_EPOCH, "the old epoch was accepted")

        # What is stored: three batches, six records, no duplicate.
        s.sendall(kwire.request(1, 4, 16, kwire.fetch_v4_body("idem-raw", 0, 0, max_wait_ms=0)))
        _, err, hwm, records = kwire.parse_fetch_v4_response(kwire.read_frame(s))
        expect(err == 0 and hwm == 6, "high watermark %d (error %d), want 6" % (hwm, err))
        expect(kwire.batches(records) == [(0, 2), (3, 4), (5, 5)], "stored batches %r" % kwire.batches(records))

        # DescribeProducers shows the state the commits check.
        s.sendall(kwire.request_flex(61, 0, 17, kwire.describe_producers_body([("idem-raw", [0, 7]), ("nope", [0])])))
        got = kwire.parse_describe_producers_response(kwire.read_frame(s))
        expect(got.get(("idem-raw", 0), (None, []))[0] == 0, "DescribeProducers: %r" % got)
        producers = got[("idem-raw", 0)][1]
        expect([p[:3] for p in producers] == [(pid, 2, 0)], "producers of idem-raw/0: %r" % producers)
        expect(producers[0][3] == 1700000000000, "last timestamp %r" % producers[0][3])
        expect(got.get(("idem-raw", 7), (None,))[0] == 3 and got.get(("nope", 0), (None,))[0] == 3,
               "unknown partition and topic: %r" % got)
        s.close()
    finally:
        a.cleanup()


def retried_batches(agent):
    """Retried batches the agent answered as duplicates (one log line per flush that had some)."""
    return sum(int(n) for n in re.findall(r"produce: (\d+) retried idempotent batches", agent.log_text()))


def exactly_once(bootstrap, topic, parts, total):
    """Reads the topic back: every id-N value (N < total) must be stored exactly once."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify"})
    stored = sum(c.get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1] for q in range(parts))
    c.close()
    seen, _ = consume_all(bootstrap, topic, parts, stored, timeout=90)
    counts = collections.Counter(seen.values())
    twice = [v for v, n in counts.items() if n > 1]
    expect(not twice, "stored more than once: %r" % twice[:5])
    expect(len(counts) == total and stored == total, "stored %d, distinct %d, want %d" % (stored, len(counts), total))
    return stored


def worker_pids(agent):
    """{worker index: pid} of the workers serving now (the newest line per worker)."""
    pids = {}
    for w, pid in re.findall(r"worker (\d+) \(pid (\d+)\) serving", agent.log_text()):
        pids[int(w)] = int(pid)
    return pids


def test_idempotent_producer_exactly_once_across_worker_kills():
    total, parts = 20000, 4
    a = Agent(env={"SLUICE_WORKERS": "2"}).start()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        admin.create_topics([NewTopic("idem", parts, 1)])["idem"].result(10)
        a.wait_log("worker 1 (pid")
        errors, acked = [], [0]

        def on_delivery(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                acked[0] += 1

        p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 5, "message.timeout.ms": 60000, "reconnect.backoff.ms": 50,
                      "reconnect.backoff.max.ms": 200, "broker.address.family": "v4"})
        killed = []
        for i in range(total):
            while True:
                try:
                    p.produce("idem", value=b"id-%d" % i, partition=i % parts, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
            if i % 500 == 0:
                time.sleep(0.05)
            # Mid-stream, kill -9 each worker once while it has requests in flight.
            for w, at in ((0, total // 3), (1, 2 * total // 3)):
                if i == at:
                    pid = worker_pids(a)[w]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((w, pid, acked[0]))
        left = p.flush(90)
        expect(left == 0, "%d messages still unacknowledged" % left)
        expect(not errors, "delivery errors: %r" % errors[:5])
        expect(acked[0] == total, "%d of %d acknowledged" % (acked[0], total))
        for w, pid, _ in killed:
            expect("worker %d (pid %d) killed by signal 9" % (w, pid) in a.log_text(), "worker %d not killed" % w)

        stored = exactly_once(a.bootstrap, "idem", parts, total)
        print("    %d acknowledged across kills of workers %s (acknowledged before each kill); %d stored, each "
              "once; %d retried batches answered as duplicates"
              % (acked[0], [(w, at) for w, _, at in killed], stored, retried_batches(a)))
    finally:
        a.cleanup()


def test_idempotent_producer_retries_after_timeouts_stored_once_on_postgres():
    """PostgreSQL frozen for 3 s under an idempotent producer whose requests time out after 1 s:
    the agent answers REQUEST_TIMED_OUT while the commits are still pending, they complete once the
    store is back, and the producer's retries of those batches are recognised: each message is
    stored once (without the checks every timed-out batch would be stored twice)."""
    total, parts = 3000, 2
    pg = pgserver.PgServer()
    a = Agent(env={"SLUICE_METADATA_URL": pg.url, "SLUICE_WORKERS": "1"})
    try:
        a.start()
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        admin.create_topics([NewTopic("idem-pg", parts, 1)])["idem-pg"].result(10)
        errors, acked = [], [0]

        def on_delivery(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                acked[0] += 1

        p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 5, "request.timeout.ms": 1000, "message.timeout.ms": 60000,
                      "broker.address.family": "v4"})
        frozen = False
        try:
            for i in range(total):
                p.produce("idem-pg", value=b"id-%d" % i, partition=i % parts, on_delivery=on_delivery)
                p.poll(0)
                if i % 100 == 0:
                    time.sleep(0.02)
                if i == total // 3:
                    pg.freeze()
                    frozen = True
                    t_freeze = time.time()
                if frozen and time.time() - t_freeze > 3:
                    pg.thaw()
                    frozen = False
            if frozen:
                time.sleep(max(0.0, 3 - (time.time() - t_freeze)))
        finally:
            pg.thaw()
        left = p.flush(90)
        expect(left == 0 and not errors and acked[0] == total,
               "%d acknowledged, %d left, errors %r" % (acked[0], left, errors[:5]))
        exactly_once(a.bootstrap, "idem-pg", parts, total)
        retried = retried_batches(a)
        timeouts = a.log_text().count("partitions answered REQUEST_TIMED_OUT")
        print("    store frozen 3 s: %d produce requests timed out, %d retried batches answered as duplicates; "
              "%d messages, each stored once" % (timeouts, retried, total))
        expect(timeouts > 0, "no produce request timed out while the store was frozen")
        expect(retried > 0, "no retried batch was recognised as a duplicate")
    finally:
        a.cleanup()
        pg.cleanup()


def test_js_clients_idempotent_producers():
    """kafkajs (InitProducerId v0-1) and @platformatic/kafka (v3-5, flexible Produce) as idempotent
    producers: every message stored once, and DescribeProducers lists both producers."""
    if not os.path.exists(NODE):
        raise Skip("the JavaScript clients are not installed (run make deps)")
    a = Agent().start()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        admin.create_topics([NewTopic("idem-js", 2, 1)])["idem-js"].result(10)
        run([NODE, "-e", KAFKAJS, JS, a.bootstrap], timeout=60)
        run([NODE, "--input-type=module", "-e", PLATFORMATIC, JS, a.bootstrap], timeout=60)
        seen, _ = consume_all(a.bootstrap, "idem-js", 2, 1000, timeout=60, record=lambda m: m.value().decode())
        counts = collections.Counter(seen.values())
        expect(len(seen) == 1000 and len(counts) == 1000, "%d stored, %d distinct, want 1000" % (len(seen), len(counts)))
        with kwire.connect(a.port) as s:
            s.sendall(kwire.request_flex(61, 0, 1, kwire.describe_producers_body([("idem-js", [0, 1])])))
            got = kwire.parse_describe_producers_response(kwire.read_frame(s))
        for q in (0, 1):
            err, producers = got[("idem-js", q)]
            expect(err == 0 and len(producers) == 2, "partition %d: %r" % (q, got[("idem-js", q)]))
            expect(all(p[2] >= 0 for p in producers), "last sequences %r" % producers)
        print("    kafkajs and @platformatic/kafka: 1000 messages stored once; producers %r"
              % [p[:3] for p in got[("idem-js", 0)][1]])
    finally:
        a.cleanup()
