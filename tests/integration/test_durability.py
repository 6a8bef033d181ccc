"""kill -9 during an acks=all produce: after a restart every acknowledged message is readable at
the offset it was acknowledged with, and offsets stay contiguous."""
import os
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import Agent, consume_all, expect

PRODUCER = r'''
import sys, time
from confluent_kafka import Producer
bootstrap, out_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
out = open(out_path, "w", buffering=1)
def on_delivery(err, msg):
    if err is None:
        out.write("%d %d %s\n" % (msg.partition(), msg.offset(), msg.value().decode()))
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2, "message.timeout.ms": 20000,
              "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200})
i = 0
end = time.time() + seconds
while time.time() < end:
    p.produce("durable", value=b"msg-%d" % i, partition=i % 2, on_delivery=on_delivery)
    i += 1
    p.poll(0)
    if i % 200 == 0:
        time.sleep(0.005)
p.flush(25)
'''


def test_kill9_loses_no_acked_record():
    a = Agent().start()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        admin.create_topics([NewTopic("durable", 2, 1)])["durable"].result(10)
        acked_path = os.path.join(a.workdir, "acked.txt")
        prod = subprocess.Popen(["/usr/bin/python3", "-c", PRODUCER, a.bootstrap, acked_path, "5"])
        time.sleep(2.0)
        a.kill9()
        time.sleep(0.5)
        a.start()
        expect(prod.wait(60) == 0, "producer failed")

        acked = {}
        with open(acked_path) as f:
            for line in f:
                part, off, value = line.split()
                acked[(int(part), int(off))] = value
        expect(len(acked) > 1000, "only %d acked messages" % len(acked))

        c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "verify", "enable.auto.commit": False})
        lo_hi = [c.get_watermark_offsets(TopicPartition("durable", p), timeout=10) for p in (0, 1)]
        want = sum(hi - lo for lo, hi in lo_hi)
        c.close()
        seen, _ = consume_all(a.bootstrap, "durable", 2, want, timeout=60, record=lambda m: m.value().decode())
        for p, (lo, hi) in enumerate(lo_hi):
            offs = sorted(o for (pp, o) in seen if pp == p)
            expect(offs == list(range(lo, hi)), "partition %d: offsets not contiguous 0..%d" % (p, hi - 1))
        lost = [(k, v) for k, v in acked.items() if seen.get(k) != v]
        expect(not lost, "%d acknowledged messages lost or moved, e.g. %r" % (len(lost), lost[:3]))
        print("    %d acknowledged before/after the kill, %d stored in all" % (len(acked), len(seen)))
    finally:
        a.cleanup()
