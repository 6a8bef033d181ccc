"""kcat (librdkafka 2.0.2) against one agent: metadata, every compression codec, offsets."""
import random
import string
import time

from harness import Agent, expect, kcat


def lines_for(tag, n, seed):
    rnd = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + " .,:;-_=+*/"
    return [("%s-%06d-" % (tag, i) + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 120)))).encode()
            for i in range(n)]


def produce(agent, topic, lines, codec="none"):
    kcat(agent, "-P", "-t", topic, "-p", "0", "-z", codec, "-X", "linger.ms=5",
         input=b"\n".join(lines) + b"\n")


def consume(agent, topic, *offset_args):
    out = kcat(agent, "-C", "-t", topic, "-p", "0", "-e", "-q", "-f", "%s\\n", *offset_args)
    return out.split(b"\n")[:-1]


def round_trip_every_codec(agent, topic_prefix, n=10000):
    """Produces n messages with each codec into its own topic and consumes them back byte-identical."""
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        topic = topic_prefix + codec
        lines = lines_for(codec, n, seed=codec)
        produce(agent, topic, lines, codec)
        got = consume(agent, topic, "-o", "beginning")
        expect(len(got) == len(lines), "%s: consumed %d of %d messages" % (codec, len(got), len(lines)))
        for i, (want, have) in enumerate(zip(lines, got)):
            expect(want == have, "%s: message %d differs: %r != %r" % (codec, i, want, have))


def test_list_brokers_and_topics():
    a = Agent().start()
    try:
        produce(a, "listed-topic", [b"x"])
        out = kcat(a, "-L").decode()
        # The brokers are the agent's 16 slots, at the ports after the bootstrap port.
        expect("16 brokers:" in out, out)
        for s in range(16):
            expect("broker %d at 127.0.0.1:%d" % (s, a.port + 1 + s) in out, out)
        expect('topic "listed-topic" with 1 partitions:' in out, out)
        leader = [l for l in out.splitlines() if "partition 0, leader" in l]
        expect(len(leader) == 1 and "replicas: %s, isrs: %s" % ((leader[0].split("leader ")[1].split(",")[0],) * 2)
               in leader[0], out)
    finally:
        a.cleanup()


def test_every_codec_round_trips_10000_messages():
    a = Agent().start()
    try:
        round_trip_every_codec(a, "codec-")
        out = kcat(a, "-C", "-t", "codec-zstd", "-p", "0", "-o", "9995", "-e", "-q", "-f", "%o %s\\n")
        expect(out.split(b"\n")[0].startswith(b"9995 zstd-009995-"), out[:200])
    finally:
        a.cleanup()


def test_relative_offset_minus_5():
    a = Agent().start()
    try:
        lines = lines_for("tail", 100, seed=5)
        produce(a, "tail-topic", lines[:60])
        produce(a, "tail-topic", lines[60:])
        got = consume(a, "tail-topic", "-o", "-5")
        expect(got == lines[-5:], "last five: %r" % got)
    finally:
        a.cleanup()


def test_offset_by_timestamp():
    a = Agent().start()
    try:
        before = lines_for("before", 500, seed=1)
        after = lines_for("after", 500, seed=2)
        produce(a, "ts-topic", before)
        time.sleep(0.3)
        t = int(time.time() * 1000)
        time.sleep(0.3)
        produce(a, "ts-topic", after)
        got = consume(a, "ts-topic", "-o", "s@%d" % t)
        expect(got == after, "from s@%d got %d messages, first %r" % (t, len(got), got[:1]))
        # A timestamp after everything: nothing to read.
        got = consume(a, "ts-topic", "-o", "s@%d" % (int(time.time() * 1000) + 60000))
        expect(got == [], "future timestamp returned %d messages" % len(got))
    finally:
        a.cleanup()
