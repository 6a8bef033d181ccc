"""Memory per worker: a 400 MB produce burst (acks=1, then acks=all) and a consume of all of it,
default settings, and no worker's peak RSS (VmHWM) reaches 100 MiB; afterwards its RSS is back near
where it started. Measured on the optimised build (AddressSanitizer's allocator keeps freed memory
in quarantine)."""
import os
import re
import subprocess

from harness import ROOT, Agent, expect

OPTIMISED_BIN = os.path.join(ROOT, "build", "sluice")
LIMIT_KIB = 100 * 1024


def worker_pids(agent):
    return [int(p) for p in re.findall(r"worker \d+ \(pid (\d+)\) serving", agent.log_text())]


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1))


def bench(agent, *args):
    p = subprocess.run([OPTIMISED_BIN, "bench"] + list(args) + ["--bootstrap-host", "127.0.0.1",
                       "--bootstrap-port", str(agent.port), "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    expect(p.returncode == 0, "sluice bench %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr[-2000:]))
    return p.stdout.decode().strip().splitlines()[-1]


def test_worker_peak_rss_under_100_mib_through_a_burst():
    a = Agent()
    a.bin = OPTIMISED_BIN
    a.start()
    try:
        a.wait_log("workers serving")  # every worker has logged its pid
        pids = worker_pids(a)
        expect(len(pids) >= 1, "no worker pid in the log")
        for acks in ("1", "all"):
            out = bench(a, "produce", "--topic", "mem", "--partitions", "8", "--records", "400000",
                        "--record-size", "1024", "--acks", acks)
            expect('"errors":0' in out and '"records":400000' in out, "produce acks=%s: %s" % (acks, out))
        consumed = bench(a, "consume", "--topic", "mem")
        hwm = {p: status_kib(p, "VmHWM") for p in pids}
        rss = {p: status_kib(p, "VmRSS") for p in pids}
        print("    800 MB produced (acks=1, acks=all) and consumed; per worker VmHWM %s MiB, VmRSS after %s MiB"
              % ([v // 1024 for v in hwm.values()], [v // 1024 for v in rss.values()]))
        for p in pids:
            expect(hwm[p] < LIMIT_KIB, "worker %d peaked at %d MiB (limit 100 MiB)" % (p, hwm[p] // 1024))
            expect(rss[p] < 48 * 1024, "worker %d still holds %d MiB after the burst" % (p, rss[p] // 1024))
        expect('"records":800000,' in consumed and '"errors":0' in consumed, "consume: %s" % consumed)
    finally:
        a.cleanup()
