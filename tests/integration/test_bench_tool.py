"""`sluice bench produce|consume` (librdkafka inside the sluice binary) against one agent: the
counts and bytes it reports are what went in and came back, its latency percentiles are ordered,
the topic it creates has the partitions asked for, and bad flags exit 2 with one line."""
import json
import re
import subprocess
import time

from harness import AGENT_BIN, Agent, consume_all, expect, free_port


def bench(agent_port, *args, timeout=120):
    p = subprocess.run([AGENT_BIN, "bench"] + list(args) + ["--bootstrap-host", "127.0.0.1",
                       "--bootstrap-port", str(agent_port)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def bench_json(agent, *args):
    rc, out, err = bench(agent.port, *args, "--json")
    expect(rc == 0, "sluice bench %s exited %d: %s" % (" ".join(args), rc, err[-2000:]))
    lines = out.strip().splitlines()
    expect(len(lines) == 1, "--json printed more than one line: %r" % out)
    return json.loads(lines[0])


def expect_latency_sane(r, what):
    lat = r["latency_ms"]
    order = [lat["min"], lat["p50"], lat["p90"], lat["p99"], lat["p99_9"], lat["max"]]
    expect(all(a <= b for a, b in zip(order, order[1:])), "%s: percentiles out of order: %r" % (what, lat))
    expect(lat["min"] <= lat["mean"] <= lat["max"], "%s: mean outside min..max: %r" % (what, lat))
    expect(lat["max"] < 120000, "%s: latency beyond the run itself: %r" % (what, lat))


def test_bench_produce_consume_counts_every_record():
    a = Agent().start()
    try:
        r = bench_json(a, "produce", "--topic", "bt", "--partitions", "3", "--records", "5000",
                       "--record-size", "200", "--acks", "all", "--clients", "2", "--linger-ms", "2")
        expect(r["mode"] == "produce" and r["records"] == 5000 and r["errors"] == 0, r)
        expect(r["bytes"] == 5000 * 200 and r["partitions"] == 3, r)
        expect(r["seconds"] > 0 and r["records_per_sec"] > 0 and r["mb_per_sec"] > 0, r)
        expect(r["latency_ms"]["max"] > 0, r)
        expect_latency_sane(r, "produce")

        # What a different client reads back: every record, 200 bytes each, over the 3 partitions.
        seen, dup = consume_all(a.bootstrap, "bt", 3, 5000, timeout=60)
        expect(len(seen) == 5000 and dup == 0, "read back %d records (%d duplicates)" % (len(seen), dup))
        expect(all(len(v) == 200 for v in seen.values()), "a record is not 200 bytes")
        expect({p for p, _ in seen} == {0, 1, 2}, "records not spread over the 3 partitions")

        # consume without a count reads what the topic holds: all 5000, end-to-end latency >= 0.
        c = bench_json(a, "consume", "--topic", "bt")
        expect(c["mode"] == "consume" and c["records"] == 5000 and c["errors"] == 0, c)
        expect(c["bytes"] == 5000 * 200, c)
        expect_latency_sane(c, "consume")
        # with a count, exactly that many, whatever the clients split.
        c = bench_json(a, "consume", "--topic", "bt", "--records", "1200", "--clients", "2")
        expect(c["records"] == 1200 and c["bytes"] == 1200 * 200, c)

        # Paced and timed, human output: a progress line each second, the rate held, a summary.
        rc, out, err = bench(a.port, "produce", "--topic", "bt", "--rate", "2000", "--duration", "2.5",
                             "--record-size", "100", "--compression", "zstd", "--acks", "1")
        expect(rc == 0, err)
        m = re.match(r"produce: (\d+) records \(0 errors\), (\d+) bytes in [0-9.]+ s", out)
        expect(m, out)
        n = int(m.group(1))
        expect(3000 <= n <= 5100 and int(m.group(2)) == n * 100, "paced at 2000/s for 2.5 s sent %d" % n)
        expect(re.search(r"p50 [0-9.]+ +p90 [0-9.]+ +p99 [0-9.]+ +p99\.9 [0-9.]+ +max [0-9.]+", out), out)
        expect(len(re.findall(r"records/s .* MB/s .*in flight .*p99", err)) >= 1, "no progress line: %r" % err)
        c = bench_json(a, "consume", "--topic", "bt")
        expect(c["records"] == 5000 + n, "consume read %d of %d" % (c["records"], 5000 + n))
        expect(a.alive(), "agent died")
    finally:
        a.cleanup()


def test_bench_bad_flags_exit_2_with_one_line():
    port = free_port()
    cases = [[], ["frob"], ["produce", "--bogus"], ["produce", "--records", "0"], ["produce", "--records", "x"],
             ["produce", "--acks", "2"], ["produce", "--compression", "brotli"], ["consume", "--clients", "65"],
             ["produce", "--record-size", "99999999"], ["produce", "--partitions", "0"], ["produce", "--rate", "-5"],
             ["produce", "--duration", "nan"], ["produce", "--acks"], ["produce", "extra"],
             ["produce", "--topic", 'a"b'], ["consume", "--topic", ""], ["produce", "--security-protocol", "sasl"],
             ["produce", "--tls-ca", ""]]
    for args in cases:
        p = subprocess.run([AGENT_BIN, "bench"] + args + ["--bootstrap-port", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        err = p.stderr.decode()
        expect(p.returncode == 2, "%r exited %d: %r" % (args, p.returncode, err))
        expect(len(err.splitlines()) == 1 and err.startswith("sluice bench: "), "%r: stderr %r" % (args, err))
        expect(p.stdout == b"", "%r printed %r" % (args, p.stdout))
    # Nothing listening: a bounded failure (exit 1), not a hang.
    t0 = time.time()
    rc, out, err = bench(port, "produce", "--records", "10", timeout=60)
    expect(rc == 1 and out == "" and "sluice bench:" in err, (rc, out, err))
    expect(time.time() - t0 < 30, "took %.1fs to give up" % (time.time() - t0))
