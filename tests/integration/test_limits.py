"""Hostile and careless clients against bounded resources: connections that leave long polls
behind, and (with a slow store) producers that push faster than it can take."""
import os
import re
import socket
import time

import kwire
from harness import ROOT, Agent, expect, kcat

OPTIMISED_BIN = os.path.join(ROOT, "build", "sluice")


def worker_pids(agent):
    return [int(p) for p in re.findall(r"worker \d+ \(pid (\d+)\) serving", agent.log_text())]


def fds_and_rss(pids):
    fds = sum(len(os.listdir("/proc/%d/fd" % p)) for p in pids)
    rss = 0
    for p in pids:
        with open("/proc/%d/status" % p) as f:
            rss += int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
    return fds, rss


def test_closed_long_polls_free_their_fds_at_once():
    """500 connections each park a fetch asking to wait 2^31-1 ms, then close: within a second the
    workers hold no more file descriptors than before and their memory is back. Memory is measured
    on the optimised build (AddressSanitizer's allocator keeps freed memory in quarantine)."""
    a = Agent(env={"SLUICE_WORKERS": "1"})
    a.bin = OPTIMISED_BIN
    a.start()
    try:
        kcat(a, "-P", "-t", "poll", "-p", "0", input=b"one\n")
        pids = worker_pids(a)
        for _ in range(20):  # warm up the worker's allocations with a few polls that end normally
            with kwire.connect(a.port) as s:
                s.sendall(kwire.request(1, 4, 1, kwire.fetch_v4_body("poll", 0, 1, max_wait_ms=10)))
                kwire.read_frame(s, timeout=5)
        base_fds, base_rss = fds_and_rss(pids)
        socks = []
        for i in range(500):
            s = kwire.connect(a.port)
            s.sendall(kwire.request(1, 4, i + 1, kwire.fetch_v4_body("poll", 0, 1, max_wait_ms=2**31 - 1)))
            socks.append(s)
        time.sleep(0.5)
        held_fds, held_rss = fds_and_rss(pids)
        for s in socks:
            s.close()
        deadline = time.time() + 1.0
        while time.time() < deadline:
            fds, rss = fds_and_rss(pids)
            if fds <= base_fds + 2 and rss <= base_rss + 2048:
                break
            time.sleep(0.05)
        fds, rss = fds_and_rss(pids)
        print("    fds: %d before, %d with 500 parked long polls, %d within 1 s of closing them; RSS %d -> %d -> %d KiB"
              % (base_fds, held_fds, fds, base_rss, held_rss, rss))
        expect(held_fds >= base_fds + 450, "the polls were not parked (fds %d -> %d)" % (base_fds, held_fds))
        expect(fds <= base_fds + 2, "%d file descriptors still held 1 s after the clients left" % (fds - base_fds))
        expect(rss <= base_rss + 2048, "RSS still %d KiB above the baseline" % (rss - base_rss))
        # The worker still answers.
        with kwire.connect(a.port) as s:
            s.sendall(kwire.request(18, 0, 7, b""))
            expect(kwire.read_frame(s, timeout=5) is not None, "no answer after the storm")
    finally:
        a.cleanup()
