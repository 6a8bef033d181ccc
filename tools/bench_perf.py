#!/usr/bin/python3
"""make bench: the performance table. On this machine, in one run: what the disk and loopback can
do (dd with fdatasync, iperf3), then sluice (file:// objects + SQLite, default workers) and
librdkafka's in-memory mock broker (build/mock_broker) driven by the same load generator
(`sluice bench`) with the same client settings: produce throughput at acks=1 and acks=all,
produce latency at fixed rates, consume throughput (warm, and cold after an agent restart), and
the agent workers' peak RSS, and produce over TLS against the same agent in plaintext. Prints one table with ratios and the targets met or missed.

Asserts nothing about speed (machines are shared). BENCH_QUICK=1 makes every step smaller."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice"))
MOCK = os.environ.get("MOCK_BROKER", os.path.join(ROOT, "build", "mock_broker"))
QUICK = bool(os.environ.get("BENCH_QUICK"))
RECORD = 1024
PARTITIONS = 8
BURST = 200000 if QUICK else 1000000          # records per throughput run (1 KiB each)
CONSUME = 50000 if QUICK else 200000          # records in the one-partition consume topic
LAT_SECONDS = 5 if QUICK else 15
DD_BLOCKS = 32 if QUICK else 128               # 8 MiB blocks: 256 MiB or 1 GiB
CLIENT = ["--record-size", str(RECORD), "--linger-ms", "5", "--batch-size", "1000000"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def disk_mb_s(folder, sync="conv=fdatasync"):
    path = os.path.join(folder, "dd.bin")
    p = subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=8M", "count=%d" % DD_BLOCKS, sync],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.unlink(path)
    m = re.search(r"(\d+) bytes .* copied, ([0-9.]+) s", p.stderr)
    return int(m.group(1)) / float(m.group(2)) / 1e6 if m else None


def loopback_mb_s():
    if not shutil.which("iperf3"):
        return None
    port = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        p = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "3", "-J"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
        return json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
    except (ValueError, KeyError, subprocess.TimeoutExpired):
        return None
    finally:
        srv.kill()
        srv.wait()


def bench(bootstrap, *args, timeout=600):
    host, port = bootstrap.rsplit(":", 1)
    cmd = [SLUICE, "bench"] + list(args) + ["--bootstrap-host", host, "--bootstrap-port", port, "--json"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0 or not p.stdout.strip():
        say("  %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.strip().splitlines()[-1:]))
        return None
    r = json.loads(p.stdout.strip().splitlines()[-1])
    say("  %-60s %9.1f MB/s  p50 %8.2f  p99 %8.2f  p99.9 %8.2f ms  (%d records)" % (
        " ".join(args)[:60], r["mb_per_sec"], r["latency_ms"]["p50"], r["latency_ms"]["p99"],
        r["latency_ms"]["p99_9"], r["records"]))
    return r


class Agent:
    def __init__(self, work, env=None):
        self.work, self.port, self.proc = work, free_port(), None
        self.env = dict(os.environ, SLUICE_KAFKA_PORT=str(self.port), SLUICE_KAFKA_HOST="127.0.0.1",
                        SLUICE_ADVERTISE_HOSTNAME_STRATEGY="local",
                        SLUICE_BUCKET_URL="file://" + os.path.join(work, "objects"),
                        SLUICE_METADATA_URL="sqlite://" + os.path.join(work, "metadata.db"), **(env or {}))

    def start(self):
        log = open(os.path.join(self.work, "agent.log"), "ab")
        self.proc = subprocess.Popen([SLUICE, "agent"], env=self.env, stdout=log, stderr=log, start_new_session=True)
        wait_port(self.port)
        return "127.0.0.1:%d" % self.port

    def workers_hwm_mib(self):
        """VmHWM (peak RSS) of each worker: the supervisor's child processes."""
        out = []
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/status" % pid) as f:
                    st = f.read()
            except (OSError, ValueError):
                continue
            if re.search(r"^PPid:\s+%d$" % self.proc.pid, st, re.M):
                m = re.search(r"^VmHWM:\s+(\d+) kB", st, re.M)
                if m:
                    out.append(int(m.group(1)) / 1024)
        return sorted(out)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # The pinned BPF maps and link outlive the agent (by design): the benchmark removes its own.
        name = "agent-%d-%d" % (os.stat("/proc/self/ns/net").st_ino, self.port)
        if os.path.exists("/sys/fs/bpf/sluice/" + name):
            subprocess.run([SLUICE, "steer", "remove", "--name", name], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)


def run_suite(bootstrap, name):
    """The same client runs against either cluster; returns the JSON summaries by step."""
    say("%s:" % name)
    # Every topic created and known to every worker before anything is timed: a first produce
    # into a new topic waits for its creation, which is not what the runs measure.
    for topic, parts in (("tp-acks1", PARTITIONS), ("tp-acksall", PARTITIONS), ("tp-lat10", PARTITIONS),
                         ("tp-lat50", PARTITIONS), ("tc-one", 1)):
        bench(bootstrap, "produce", "--topic", topic, "--partitions", str(parts), "--records", "100", *CLIENT)
    time.sleep(3)
    r = {}
    # Latency first, on an idle cluster: after a burst the agent may still be working off its backlog.
    for mb in (10, 50):
        r["lat%d" % mb] = bench(bootstrap, "produce", "--topic", "tp-lat%d" % mb, "--partitions", str(PARTITIONS),
                                "--rate", str(int(mb * 1e6 / RECORD)), "--duration", str(LAT_SECONDS),
                                "--acks", "all", *CLIENT)
    for k, acks in (("acks1", "1"), ("acksall", "all")):
        time.sleep(2)
        r[k] = bench(bootstrap, "produce", "--topic", "tp-" + k, "--partitions", str(PARTITIONS),
                     "--records", str(BURST), "--acks", acks, *CLIENT)
    time.sleep(2)
    r["fill"] = bench(bootstrap, "produce", "--topic", "tc-one", "--partitions", "1", "--records", str(CONSUME),
                      "--acks", "all", *CLIENT)
    r["consume_warm"] = bench(bootstrap, "consume", "--topic", "tc-one")
    return r


def tls_produce(work):
    """Produce acks=1 over TLS (a self-signed P-256 certificate, TLS 1.3) and consume it back, then
    the same runs in plaintext against a fresh agent of the same kind: what TLS costs the agent and
    the client."""
    cert, key = os.path.join(work, "tls.pem"), os.path.join(work, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "1"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    out = {}
    for name, env, flags in (
            ("tls", {"SLUICE_TLS_ENABLED": "true", "SLUICE_TLS_SERVER_CERT_FILE": cert,
                     "SLUICE_TLS_SERVER_PRIVATE_KEY_FILE": key}, ["--security-protocol", "ssl", "--tls-ca", cert]),
            ("plain", {}, [])):
        d = os.path.join(work, "tls-" + name)
        os.makedirs(d)
        agent = Agent(d, env)
        try:
            bs = agent.start()
            say("sluice, produce %s:" % ("over TLS" if name == "tls" else "in plaintext"))
            bench(bs, "produce", "--topic", "tp-tls", "--partitions", str(PARTITIONS), "--records", "100",
                  *CLIENT, *flags)
            time.sleep(2)
            out[name] = bench(bs, "produce", "--topic", "tp-tls", "--partitions", str(PARTITIONS), "--records",
                              str(BURST), "--acks", "1", *CLIENT, *flags)
            out[name + "_consume"] = bench(bs, "consume", "--topic", "tp-tls", *flags)
        finally:
            agent.stop()
    return out


def get(r, *path):
    for k in path:
        if r is None:
            return None
        r = r.get(k)
    return r


def main():
    work = tempfile.mkdtemp(prefix="sluice-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    agent = None
    mock = None
    try:
        say("bench_perf: %s, %d x 1 KiB records per throughput run, %d s per latency run" % (
            "quick" if QUICK else "full", BURST, LAT_SECONDS))
        disk = disk_mb_s(work)
        say("disk (dd bs=8M conv=fdatasync, %d MiB): %.0f MB/s" % (DD_BLOCKS * 8, disk or 0))
        # What acks=all has to do: every object synced before its acknowledgement.
        disk_each = disk_mb_s(work, "oflag=dsync")
        say("disk (dd bs=8M oflag=dsync: a sync per 8 MiB): %.0f MB/s" % (disk_each or 0))
        loop = loopback_mb_s()
        say("loopback TCP (iperf3): %s MB/s" % ("%.0f" % loop if loop else "n/a"))

        mock = subprocess.Popen([MOCK, "--partitions", str(PARTITIONS), "--topic", "tp-acks1", "--topic", "tp-acksall",
                                 "--topic", "tp-lat10", "--topic", "tp-lat50", "--partitions", "1", "--topic", "tc-one"],
                                stdout=subprocess.PIPE, text=True)
        mock_bs = mock.stdout.readline().strip().split(",")[0]
        m = run_suite(mock_bs, "mock broker (%s)" % mock_bs)
        mock.send_signal(signal.SIGTERM)
        mock.wait(30)
        mock = None

        agent = Agent(work)
        s = run_suite(agent.start(), "sluice (file:// + SQLite, default workers)")
        rss = agent.workers_hwm_mib()
        agent.stop()
        agent.start()  # cold: a fresh agent process, nothing in its caches
        s["consume_cold"] = bench("127.0.0.1:%d" % agent.port, "consume", "--topic", "tc-one")
        agent.stop()
        agent = None
        tls = tls_produce(work)
    finally:
        if mock:
            mock.kill()
            mock.wait()
        if agent:
            agent.stop()
        shutil.rmtree(work, ignore_errors=True)

    def fmt(v, unit=""):
        if v == "-":  # not applicable to this row
            return v
        return "n/a" if v is None else ("%.1f%s" % (v, unit) if v < 100 else "%.0f%s" % (v, unit))

    def ratio(a, b):
        return None if a is None or not b else a / b

    rows = []  # (what, sluice, baseline, ratio, target, met)

    def row(what, sv, bv, rt, target="", met=None):
        rows.append((what, fmt(sv), fmt(bv), "" if rt is None else "%.2fx" % rt, target,
                     "" if met is None else ("met" if met else "MISSED")))

    row("disk: dd bs=8M conv=fdatasync (MB/s)", "-", disk, None)
    row("disk: dd bs=8M oflag=dsync, a sync per 8 MiB (MB/s)", "-", disk_each, None)
    row("loopback TCP: iperf3 (MB/s)", "-", loop, None)
    for k, label in (("acks1", "produce acks=1 (MB/s)"), ("acksall", "produce acks=all (MB/s)")):
        sv, mv = get(s, k, "mb_per_sec"), get(m, k, "mb_per_sec")
        row(label + " vs mock", sv, mv, ratio(sv, mv))
    sv = get(s, "acksall", "mb_per_sec")
    r = ratio(sv, disk)
    row("produce acks=all vs disk", sv, disk, r, ">= 0.80x disk", None if r is None else r >= 0.8)
    row("produce acks=all vs a sync per 8 MiB", sv, disk_each, ratio(sv, disk_each))
    for mb in (10, 50):
        for p, pn in (("p50", "p50"), ("p99", "p99"), ("p99_9", "p99.9")):
            sv, mv = get(s, "lat%d" % mb, "latency_ms", p), get(m, "lat%d" % mb, "latency_ms", p)
            target, met = "", None
            if mb == 50 and p == "p99" and sv is not None and mv is not None:
                target, met = "<= mock + 3 ms", sv <= mv + 3
            row("produce latency %s @ %d MB/s acks=all (ms)" % (pn, mb), sv, mv, ratio(sv, mv), target, met)
    mc = get(m, "consume_warm", "mb_per_sec")
    for k, label in (("consume_warm", "consume 1 partition, warm (MB/s)"),
                     ("consume_cold", "consume 1 partition, cold restart (MB/s)")):
        sv = get(s, k, "mb_per_sec")
        r = ratio(sv, mc)
        row(label, sv, mc, r, ">= 0.80x mock", None if r is None else r >= 0.8)
    sv, pv = get(tls, "tls", "mb_per_sec"), get(tls, "plain", "mb_per_sec")
    r = ratio(sv, pv)
    row("produce acks=1 over TLS vs plaintext (MB/s)", sv, pv, r, ">= 0.70x plaintext", None if r is None else r >= 0.7)
    sv, pv = get(tls, "tls_consume", "mb_per_sec"), get(tls, "plain_consume", "mb_per_sec")
    row("consume 8 partitions over TLS vs plaintext (MB/s)", sv, pv, ratio(sv, pv))
    peak = max(rss) if rss else None
    row("peak RSS per worker, VmHWM (MiB; %s)" % ", ".join("%.0f" % x for x in rss), peak, "-", None,
        "< 100 MiB", None if peak is None else peak < 100)

    head = ("", "sluice", "baseline", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]
    print()
    print("%d x %d-byte records, linger 5 ms, batch 1 MB, %d partitions; baseline = librdkafka mock broker "
          "unless the row says otherwise; mock consume read %s records (it keeps a bounded log); "
          "%d CPUs, load average %.1f at the end (others' work skews latency)" % (
              BURST, RECORD, PARTITIONS, get(m, "consume_warm", "records"), os.cpu_count(), os.getloadavg()[0]))
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
