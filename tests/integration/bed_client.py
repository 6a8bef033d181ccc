#!/usr/bin/python3
"""A Kafka client for test beds, run inside the bed's client namespace (netbed.py starts it with
nsenter). It prints one JSON document on stdout, so the test in the root namespace can check what
the client saw:

  produce   N producers (python3-confluent-kafka) each write values "<producer>-<n>" round robin
            over all the partitions, for --messages or until SIGTERM/SIGINT (--until-stopped), at --rate
            messages/s in all; then flush. Prints the acknowledged (partition, offset, value), the
            delivery errors, produce latency percentiles, and per broker the most `connects` and
            `disconnects` librdkafka's statistics reported (a reset connection shows there).
  consume   reads partitions 0..P-1 from offset 0 until --want distinct offsets or --timeout;
            prints the records and the number of duplicates.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Extra librdkafka settings for every client, from the test bed (e.g. security.protocol=ssl).
EXTRA = json.loads(os.environ.get("BED_CLIENT_CONF") or "{}")


def pct(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient(dict({"bootstrap.servers": bootstrap}, **EXTRA))
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(20)
    except KafkaException as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise


def produce(a):
    if a.create:
        create_topic(a.bootstrap, a.topic, a.partitions)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock = threading.Lock()
    acked, errors, latencies = [], [], []
    brokers = {}

    def on_stats(text):
        s = json.loads(text)
        with lock:
            for name, b in s.get("brokers", {}).items():
                if b.get("nodeid", -1) < 0:
                    continue  # the bootstrap connection
                seen = brokers.setdefault(name, {"connects": 0, "disconnects": 0})
                seen["connects"] = max(seen["connects"], b.get("connects", 0))
                seen["disconnects"] = max(seen["disconnects"], b.get("disconnects", 0))

    conf = {"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": a.linger,
            "statistics.interval.ms": 250, "stats_cb": on_stats, "message.timeout.ms": a.message_timeout_ms,
            "socket.timeout.ms": 10000, "enable.idempotence": False, "retries": 1000000,
            "queue.buffering.max.messages": 1000000, "message.max.bytes": max(1000000, a.size + 1000), **EXTRA}
    producers = [Producer(conf) for _ in range(a.producers)]
    payload_pad = b"x" * max(0, a.size - 16)

    def delivered(err, msg, t0):
        now = time.time()
        with lock:
            if err is not None:
                errors.append(str(err))
            else:
                acked.append((msg.partition(), msg.offset(), msg.value()[:16].rstrip(b"x").decode()))
                if t0 is not None:
                    latencies.append(now - t0)

    # Warm up: every producer learns the topic's metadata and connects to every partition's leader,
    # so that latencies are the steady state's, not those of the first connections.
    for n, p in enumerate(producers):
        for part in range(a.partitions):
            value = (b"%d-w%d" % (n, part)).ljust(16, b"x") + payload_pad
            p.produce(a.topic, value, partition=part, on_delivery=lambda e, m: delivered(e, m, None))
        p.flush(a.flush_seconds)

    t_start = time.time()
    i = 0
    interval = 1.0 / a.rate if a.rate else 0
    next_at = time.time()
    while not stop.is_set() and (a.until_stopped or i < a.messages) and time.time() - t_start < a.max_seconds:
        if interval:
            now = time.time()
            if now < next_at:
                # Deliveries are reported from poll(): serve them while waiting, or the latency
                # measured would include this loop's sleeps.
                for p in producers:
                    p.poll(0)
                time.sleep(min(next_at - now, 0.001))
                continue
            next_at += interval
        n = i % a.producers
        part = (i // a.producers) % a.partitions  # every producer writes every partition
        value = (b"%d-%d" % (n, i)).ljust(16, b"x") + payload_pad
        t0 = time.time()
        while True:
            try:
                producers[n].produce(a.topic, value, partition=part,
                                     on_delivery=lambda e, m, t0=t0: delivered(e, m, t0))
                break
            except BufferError:
                producers[n].poll(0.01)
        if i % 100 == 0 or interval:
            for p in producers:
                p.poll(0)
        i += 1
    unflushed = sum(p.flush(a.flush_seconds) for p in producers)
    for p in producers:
        p.poll(0.3)  # a last statistics callback
    seconds = time.time() - t_start
    latencies.sort()
    json.dump({"sent": i, "acked": acked, "errors": errors, "unflushed": unflushed, "seconds": seconds,
               "latency_ms": {k: (pct(latencies, q) or 0) * 1000 for k, q in (("p50", 50), ("p90", 90), ("p99", 99))}
               | {"max": (latencies[-1] if latencies else 0) * 1000},
               "brokers": brokers}, sys.stdout)


def consume(a):
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "bed-verify", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000, **EXTRA})
    c.assign([TopicPartition(a.topic, p, 0) for p in range(a.partitions)])
    seen, dup, errors = {}, 0, []
    deadline = time.time() + a.timeout
    t0 = time.time()
    while len(seen) < a.want and time.time() < deadline:
        for m in c.consume(10000, timeout=0.5):
            if m.error():
                errors.append(str(m.error()))
                continue
            key = (m.partition(), m.offset())
            dup += key in seen
            seen[key] = m.value()[:16].rstrip(b"x").decode()
    seconds = time.time() - t0
    c.close()
    json.dump({"records": [[p, o, v] for (p, o), v in seen.items()], "duplicates": dup, "errors": errors[:20],
               "seconds": seconds}, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=24)
    p.add_argument("--create", action="store_true")
    p.add_argument("--producers", type=int, default=4)
    p.add_argument("--messages", type=int, default=10000, help="after one warm-up message per partition each")
    p.add_argument("--until-stopped", action="store_true")
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--rate", type=float, default=0, help="messages/s in all; 0: as fast as possible")
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--acks", default="all")
    p.add_argument("--linger", type=int, default=5)
    p.add_argument("--message-timeout-ms", type=int, default=60000)
    p.add_argument("--flush-seconds", type=float, default=60)
    c = sub.add_parser("consume")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--partitions", type=int, default=24)
    c.add_argument("--want", type=int, required=True)
    c.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    produce(a) if a.cmd == "produce" else consume(a)


if __name__ == "__main__":
    main()
