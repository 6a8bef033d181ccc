#!/usr/bin/python3
"""make bench: produce and consume throughput and produce latency of one agent on the embedded
default (file:// objects + SQLite), against a baseline measured in the same run on the same disk:
writing the same bytes as fsync'd 8 MiB files (what the flusher cannot beat).

Prints numbers and ratios; asserts nothing about speed (machines are shared and noisy)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_MESSAGES", "200000"))
SIZE = int(os.environ.get("BENCH_MESSAGE_BYTES", "1000"))
PARTITIONS = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_fsync_write(folder, total_bytes):
    """Seconds to write total_bytes as fsync'd 8 MiB files (plus the directory fsync)."""
    block = os.urandom(8 << 20)
    os.makedirs(folder, exist_ok=True)
    t0 = time.time()
    written, i = 0, 0
    dfd = os.open(folder, os.O_RDONLY)
    while written < total_bytes:
        path = os.path.join(folder, "b%d" % i)
        with open(path, "wb") as f:
            f.write(block)
            f.flush()
            os.fsync(f.fileno())
        os.fsync(dfd)
        written += len(block)
        i += 1
    os.close(dfd)
    return time.time() - t0


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    work = tempfile.mkdtemp(prefix="sluice-bench-")
    port = free_port()
    env = dict(os.environ, SLUICE_KAFKA_PORT=str(port), SLUICE_KAFKA_HOST="127.0.0.1", SLUICE_ADVERTISE_HOSTNAME_STRATEGY="local",
               SLUICE_DEFAULT_PARTITIONS=str(PARTITIONS),
               SLUICE_BUCKET_URL="file://" + os.path.join(work, "objects"),
               SLUICE_METADATA_URL="sqlite://" + os.path.join(work, "metadata.db"))
    log = open(os.path.join(work, "agent.log"), "wb")
    agent = subprocess.Popen([os.path.join(ROOT, "build", "sluice"), "agent"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        bootstrap = "127.0.0.1:%d" % port
        payload = os.urandom(SIZE // 2).hex().encode()[:SIZE]

        latencies = []
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                      "queue.buffering.max.messages": N + 10, "batch.size": 1 << 20})

        # Warm up: create the topic and connections.
        p.produce("bench", b"warmup")
        p.flush(10)
        t0 = time.time()
        for i in range(N):
            while True:
                try:
                    p.produce("bench", payload, key=b"%d" % i, on_delivery=lambda e, m, t=time.time(): (
                        latencies.append(time.time() - t) if e is None else None))
                    break
                except BufferError:
                    p.poll(0.01)
            if i % 1000 == 0:
                p.poll(0)
        p.flush(120)
        produce_s = time.time() - t0
        if len(latencies) != N:
            print("bench: only %d of %d messages acknowledged" % (len(latencies), N))
            return 1

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                      "fetch.max.bytes": 50 << 20})
        c.assign([TopicPartition("bench", part, 0) for part in range(PARTITIONS)])
        got = 0
        t1 = time.time()
        while got < N + 1 and time.time() - t1 < 120:
            got += len(c.consume(10000, timeout=1.0))
        consume_s = time.time() - t1
        c.close()

        total = N * SIZE
        base_s = baseline_fsync_write(os.path.join(work, "baseline"), total)
        mb = total / 1e6
        print("sluice bench: %d messages x %d bytes, %d partitions, acks=all, linger.ms=5, batch timeout 5ms"
              % (N, SIZE, PARTITIONS))
        print("  produce   %8.0f msg/s  %7.1f MB/s   latency p50 %.1f ms  p99 %.1f ms  max %.1f ms"
              % (N / produce_s, mb / produce_s, pct(latencies, 50) * 1e3, pct(latencies, 99) * 1e3,
                 max(latencies) * 1e3))
        print("  consume   %8.0f msg/s  %7.1f MB/s   (%d messages read)" % (got / consume_s, got * SIZE / 1e6 / consume_s, got))
        print("  baseline  fsync'd 8 MiB file writes of the same bytes: %7.1f MB/s" % (mb / base_s))
        print("  ratio     produce / baseline = %.2f   consume / produce = %.2f"
              % ((mb / produce_s) / (mb / base_s), (got / consume_s) / (N / produce_s)))
        return 0
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(15)
        shutil.rmtree(work, ignore_errors=True)
        # The agent's BPF pins outlive it on purpose; a benchmark leaves nothing behind.
        subprocess.run([os.path.join(ROOT, "build", "sluice"), "steer", "remove", "--port", str(port)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
