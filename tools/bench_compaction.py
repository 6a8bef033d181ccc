#!/usr/bin/python3
"""make bench: what compaction of small objects does to a topic written in many small flushes
(issue 13). One agent (file:// objects + SQLite, default workers) with compaction off takes a
rate-limited produce (8 partitions, 1 KiB records, acks=all: every flush a small object); then the
bucket's objects per GiB of data and the partitions' chunks are counted and the topic is consumed
by a fresh agent (cold caches). The same agent restarted with compaction on (a round every second)
rewrites the small chunks; once the count settles and the replaced objects are deleted, the same
figures are taken again. Asserts nothing about speed; BENCH_QUICK=1 writes less."""
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_perf import Agent, bench, say  # noqa: E402

QUICK = bool(os.environ.get("BENCH_QUICK"))
RECORD = 1024
RECORDS = 60000 if QUICK else 250000     # 60 or 250 MB
RATE_MB = 10                             # slow enough that each flush is small
TOPIC = "tp-small-flushes"


def bucket(work):
    """(objects, bytes) in the object folder."""
    n = size = 0
    for dirpath, _, files in os.walk(os.path.join(work, "objects")):
        for f in files:
            try:
                size += os.path.getsize(os.path.join(dirpath, f))
                n += 1
            except FileNotFoundError:  # deleted by garbage collection meanwhile
                pass
    return n, size


def chunks(work):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(work, "metadata.db"), uri=True)
    try:
        return db.execute("SELECT count(*) FROM chunks c JOIN topics t ON t.id = c.topic_id"
                          " WHERE t.name = ? AND t.deleted = 0", (TOPIC,)).fetchone()[0]
    finally:
        db.close()


def cold_consume(work, env):
    agent = Agent(work, env)
    try:
        bs = agent.start()
        return bench(bs, "consume", "--topic", TOPIC)
    finally:
        agent.stop()


def figures(work, env):
    n, size = bucket(work)
    c = chunks(work)
    r = cold_consume(work, env)
    return {"objects": n, "bytes": size, "per_gib": n / (size / 2**30) if size else None, "chunks": c,
            "consume": r["mb_per_sec"] if r else None}


def main():
    work = tempfile.mkdtemp(prefix="sluice-bench-compaction-")
    off = {"SLUICE_COMPACTION_ENABLED": "false", "SLUICE_RETENTION_CHECK_INTERVAL": "1s"}
    on = {"SLUICE_COMPACTION_ENABLED": "true", "SLUICE_RETENTION_CHECK_INTERVAL": "1s",
          "SLUICE_OBJECT_DELETE_GRACE": "2s", "SLUICE_COMPACTION_MIN_AGE": "1s"}
    agent = None
    try:
        say("compaction of small objects: %d x 1 KiB records at %d MB/s, acks=all, 8 partitions" % (RECORDS, RATE_MB))
        agent = Agent(work, off)
        bs = agent.start()
        bench(bs, "produce", "--topic", TOPIC, "--partitions", "8", "--records", str(RECORDS), "--acks", "all",
              "--rate", str(int(RATE_MB * 1e6 / RECORD)), "--record-size", str(RECORD), "--linger-ms", "5")
        agent.stop()
        before = figures(work, off)

        agent = Agent(work, on)
        agent.start()
        # Until the objects stop changing: compacted, and the replaced ones deleted after the grace.
        last, still, deadline = None, 0, time.time() + (120 if QUICK else 300)
        while time.time() < deadline and still < 3:
            time.sleep(2)
            now = bucket(work)[0], chunks(work)
            still = still + 1 if now == last else 0
            last = now
        took = time.time() - (deadline - (120 if QUICK else 300))
        agent.stop()
        agent = None
        after = figures(work, off)
    finally:
        if agent:  # stopped on every path: its process and pinned steering objects go
            agent.stop()
        shutil.rmtree(work, ignore_errors=True)

    def fmt(v):
        return "n/a" if v is None else ("%.1f" % v if v < 100 else "%.0f" % v)

    print("compaction of small objects (%d MB written in small flushes; settled in %.0f s)" % (
        before["bytes"] / 1e6, took))
    print("%-46s %12s %12s %8s" % ("", "before", "after", "ratio"))
    for key, label in (("per_gib", "objects per GiB"), ("objects", "objects in the bucket"),
                       ("chunks", "chunks in the index (8 partitions)"),
                       ("consume", "consume the topic, cold agent (MB/s)")):
        b, a = before[key], after[key]
        ratio = "%.2fx" % (a / b) if a is not None and b else "n/a"
        print("%-46s %12s %12s %8s" % (label, fmt(b), fmt(a), ratio))


if __name__ == "__main__":
    main()
