"""Kernel-side steering on one host (needs root: BPF and bpffs). An agent with 2 workers: every
slot port reaches its owner, bootstrap connections spread by load, partitions stay on one worker,
a killed worker's slots come back, and the pinned counters match what the test did."""
import json
import os
import re
import sqlite3
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kwire
from harness import AGENT_BIN, Agent, Skip, expect, run, wait_port

SLOTS = 16


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root for BPF")


def steering_agent(**env):
    need_root()
    e = {"SLUICE_WORKERS": "2", "SLUICE_SLOTS": str(SLOTS), "SLUICE_STEERING": "on", "SLUICE_LOG_LEVEL": "debug"}
    e.update(env)
    a = Agent(env=e).start()
    a.wait_log("all 2 workers serving")
    return a


def status(agent):
    out = run([AGENT_BIN, "steer", "status", "--name", agent.steering_name, "--json"])
    return json.loads(out)


def slot_owners(agent):
    owners = {}
    for w in status(agent)["workers_detail"]:
        for s in w["slots"]:
            owners[s] = w["worker"]
    return owners


def accepted_by(agent):
    """{(client port, dialled port): worker} from the workers' "worker N accepted 127.0.0.1:P on port Q"
    lines (a client port alone is not unique: connections to different ports may share one)."""
    out = {}
    for m in re.finditer(r"worker (\d+) accepted 127\.0\.0\.1:(\d+) on port (\d+)", agent.log_text()):
        out[(int(m.group(2)), int(m.group(3)))] = int(m.group(1))
    return out


def answered(sock, corr):
    sock.sendall(kwire.request(18, 0, corr, b""))
    frame = kwire.read_frame(sock, timeout=5)
    return frame is not None and frame[:4] == corr.to_bytes(4, "big")


def wait_accepted(agent, ports, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen = accepted_by(agent)
        if all(p in seen for p in ports):
            return seen
        time.sleep(0.05)
    return accepted_by(agent)


def bpftool_counters(agent):
    """Sums of the per-CPU counters, read with bpftool's JSON output (what an operator would do)."""
    path = "/sys/fs/bpf/sluice/%s/counters" % agent.steering_name
    dump = json.loads(run(["bpftool", "-j", "map", "dump", "pinned", path]))
    sums = {}
    for entry in dump:
        key = entry["formatted"]["key"] if "formatted" in entry else entry["key"]
        vals = entry["formatted"]["values"] if "formatted" in entry else entry["values"]
        sums[key] = sum(v["value"] for v in vals)
    return sums


def test_every_slot_port_is_answered_by_its_owner():
    a = steering_agent()
    try:
        owners = slot_owners(a)
        expect(sorted(owners) == list(range(SLOTS)), "every slot has an owner: %r" % owners)
        expect(set(owners.values()) == {0, 1}, "both workers own slots: %r" % owners)
        socks, want = [], {}
        for i in range(100):
            slot = i % SLOTS
            s = kwire.connect(a.port + 1 + slot)
            expect(answered(s, i + 1), "slot %d: no answer" % slot)
            want[(s.getsockname()[1], a.port + 1 + slot)] = owners[slot]
            socks.append(s)
        seen = wait_accepted(a, want)
        right = sum(1 for p, w in want.items() if seen.get(p) == w)
        print("    %d of 100 slot connections accepted by the slot's owner" % right)
        wrong = [(p, w, seen.get(p)) for p, w in want.items() if seen.get(p) != w]
        expect(right == 100, "only %d of 100 reached the owner; (client port, owner, accepted by): %r; owners now %r"
               % (right, wrong, slot_owners(a)))
        for s in socks:
            s.close()
    finally:
        a.cleanup()


def test_bootstrap_connections_go_to_the_least_loaded_worker():
    a = steering_agent()
    try:
        socks, ports = [], []
        for i in range(20):
            s = kwire.connect(a.port)
            expect(answered(s, i + 1), "bootstrap connection %d: no answer" % i)
            socks.append(s)
            ports.append((s.getsockname()[1], a.port))
            time.sleep(0.02)  # let the worker publish its new connection count
        seen = wait_accepted(a, ports)
        per_worker = [sum(1 for p in ports if seen.get(p) == w) for w in (0, 1)]
        print("    20 open bootstrap connections per worker: %r" % per_worker)
        expect(sum(per_worker) == 20 and abs(per_worker[0] - per_worker[1]) <= 2, "spread %r" % per_worker)
        for s in socks:
            s.close()
    finally:
        a.cleanup()


def produce_8_partitions(agent, producers=4, per_producer=4000):
    admin = AdminClient({"bootstrap.servers": agent.bootstrap})
    admin.create_topics([NewTopic("local", 8, 1)])["local"].result(10)
    for n in range(producers):
        p = Producer({"bootstrap.servers": agent.bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(per_producer):
            p.produce("local", b"v%d" % i, partition=i % 8)
        expect(p.flush(30) == 0, "undelivered messages")


def workers_per_partition(agent):
    db = sqlite3.connect(os.path.join(agent.workdir, "metadata.db"))
    rows = db.execute("SELECT c.partition, o.key FROM chunks c JOIN objects o ON o.id = c.object_id "
                      "JOIN topics t ON t.id = c.topic_id WHERE t.name = 'local'").fetchall()
    db.close()
    out = {}
    for part, key in rows:
        out.setdefault(part, set()).add(re.search(r"-w(\d+)-", key).group(1))
    return out


def test_locality_each_partition_written_by_one_worker():
    a = steering_agent()
    try:
        produce_8_partitions(a)
        wpp = workers_per_partition(a)
        expect(sorted(wpp) == list(range(8)), "partitions written: %r" % sorted(wpp))
        single = sum(1 for ws in wpp.values() if len(ws) == 1)
        print("    steering on: %d of 8 partitions written by exactly one worker" % single)
        expect(single == 8, "steering on: %r" % wpp)
    finally:
        a.cleanup()
    b = Agent(env={"SLUICE_WORKERS": "2", "SLUICE_STEERING": "off"}).start()
    try:
        expect("locality is best effort" in b.log_text(), "no warning line with steering off")
        produce_8_partitions(b)
        wpp = workers_per_partition(b)
        single = sum(1 for ws in wpp.values() if len(ws) == 1)
        print("    steering off (SO_REUSEPORT): %d of 8 partitions written by exactly one worker (%.0f%%)"
              % (single, 100.0 * single / 8))
    finally:
        b.cleanup()


def test_kill9_worker_other_workers_consumer_streams_on():
    a = steering_agent()
    try:
        owners = slot_owners(a)
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        admin.create_topics([NewTopic("stream", 16, 1)])["stream"].result(10)
        md = admin.list_topics("stream", timeout=10).topics["stream"].partitions
        # A partition whose slot (= leader) worker 1 owns: the consumer streams from worker 1; kill worker 0.
        part = next(p for p, m in md.items() if owners[m.leader] == 1)
        victim_slots = [s for s, w in owners.items() if w == 0]

        acked, stop = [], threading.Event()

        def produce():
            p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 2,
                          "message.timeout.ms": 20000})
            i = 0
            while not stop.is_set():
                p.produce("stream", b"m%d" % i, partition=i % 16,
                          on_delivery=lambda e, m: acked.append((m.partition(), m.offset(), m.value()))
                          if e is None else None)
                i += 1
                p.poll(0.001)
            p.flush(25)

        stats = []
        c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "s", "enable.auto.commit": False,
                      "statistics.interval.ms": 200, "stats_cb": lambda s: stats.append(json.loads(s)),
                      "fetch.wait.max.ms": 50})
        c.assign([TopicPartition("stream", part, 0)])
        t = threading.Thread(target=produce)
        t.start()
        got = 0
        deadline = time.time() + 2
        while time.time() < deadline:
            got += len(c.consume(1000, timeout=0.2))
        expect(got > 0, "consumer got nothing before the kill")

        workers = [int(x) for x in re.findall(r"worker 0 \(pid (\d+)\) serving", a.log_text())]
        os.kill(workers[-1], 9)
        t_kill = time.time()
        # The dead worker's slots answer again (through a live worker, then its restarted self).
        back = None
        while time.time() - t_kill < 5 and back is None:
            try:
                ok = True
                for s in victim_slots:
                    with kwire.connect(a.port + 1 + s) as sock:
                        ok = ok and answered(sock, 7)
                if ok:
                    back = time.time() - t_kill
            except OSError:
                time.sleep(0.02)
        expect(back is not None and back <= 2.0, "dead worker's slots not served within 2 s (%r)" % back)
        print("    killed worker 0: its %d slots answered again after %.0f ms" % (len(victim_slots), back * 1000))
        deadline = time.time() + 2
        after = 0
        while time.time() < deadline:
            after += len(c.consume(1000, timeout=0.2))
        expect(after > 0, "consumer got nothing after the kill")
        stop.set()
        t.join(60)
        time.sleep(0.5)
        c.poll(0.3)
        c.close()
        # The consumer's connection to its slot never broke.
        leader = "127.0.0.1:%d/%d" % (a.port + 1 + md[part].leader, md[part].leader)
        connects = [s["brokers"][leader]["connects"] for s in stats if leader in s.get("brokers", {})]
        expect(connects and max(connects) == 1, "consumer reconnected to %s: %r" % (leader, connects[-3:]))
        expect("worker 0 (pid %d) killed by signal 9" % workers[-1] in a.log_text(), "no log line about the kill")

        # Nothing acknowledged was lost.
        c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "v", "enable.auto.commit": False})
        c.assign([TopicPartition("stream", p, 0) for p in range(16)])
        seen = {}
        deadline = time.time() + 60
        while len(seen) < len(acked) and time.time() < deadline:
            for m in c.consume(10000, timeout=0.5):
                seen[(m.partition(), m.offset())] = m.value()
        c.close()
        lost = [x for x in acked if seen.get((x[0], x[1])) != x[2]]
        expect(not lost, "%d of %d acknowledged records lost, e.g. %r" % (len(lost), len(acked), lost[:3]))
        print("    %d records acknowledged during the kill, none lost" % len(acked))
    finally:
        a.cleanup()


def test_pinned_counters_match_the_connections_made():
    a = steering_agent()
    try:
        # Fresh maps: only the harness's own readiness probe (a bootstrap connection) is counted.
        before = bpftool_counters(a)
        expect(before.get(0) == 0 and before.get(2) == 0 and before.get(3) == 0, "fresh maps: %r" % before)
        socks = []
        for i in range(12):
            socks.append(kwire.connect(a.port + 1 + (i % SLOTS)))
        for i in range(5):
            socks.append(kwire.connect(a.port))
        for i, s in enumerate(socks):
            expect(answered(s, i + 1), "no answer")
        after = bpftool_counters(a)
        got = {k: after[k] - before.get(k, 0) for k in after}
        st = status(a)["counters"]
        print("    bpftool counters, change after 12 slot + 5 bootstrap connections: %r" % got)
        expect(got.get(0) == 12 and got.get(1) == 5 and got.get(2) == 0 and got.get(3) == 0 and got.get(4) == 0,
               "counters %r" % got)
        expect(st["slot_hit"] == after[0] and st["bootstrap_pick"] == after[1], "sluice steer status: %r" % st)
        for s in socks:
            s.close()
    finally:
        a.cleanup()


def test_steering_off_still_serves_every_port():
    a = Agent(env={"SLUICE_WORKERS": "2", "SLUICE_STEERING": "off"}).start()
    try:
        expect("locality is best effort" in a.log_text(), "no warning line")
        for port in [a.port] + [a.port + 1 + s for s in range(SLOTS)]:
            with kwire.connect(port) as s:
                expect(answered(s, 1), "port %d not served" % port)
    finally:
        a.cleanup()


def link_id(agent):
    path = "/sys/fs/bpf/sluice/%s/link" % agent.steering_name
    return json.loads(run(["bpftool", "-j", "link", "show", "pinned", path]))["id"]


def test_agent_restart_reuses_the_pinned_link_and_maps():
    a = steering_agent()
    try:
        first_link = link_id(a)
        for i in range(3):
            with kwire.connect(a.port) as s:
                expect(answered(s, i + 1), "no answer before the restart")
        picks_before = status(a)["counters"]["bootstrap_pick"]

        # Probe the bootstrap port every 10 ms across the restart: how long is it refused?
        stop, refused, longest = threading.Event(), [], [0.0]

        def probe():
            down_since = None
            while not stop.is_set():
                try:
                    with kwire.connect(a.port) as s:
                        s.settimeout(2)
                        ok = answered(s, 99)
                except OSError:
                    ok = False
                now = time.time()
                if not ok:
                    refused.append(now)
                    down_since = down_since or now
                elif down_since:
                    longest[0] = max(longest[0], now - down_since)
                    down_since = None
                time.sleep(0.01)

        t = threading.Thread(target=probe)
        t.start()
        time.sleep(0.1)
        expect(a.stop() == 0, "agent did not exit cleanly")
        expect(os.path.exists("/sys/fs/bpf/sluice/%s/link" % a.steering_name), "link pin gone after exit")
        a.start()
        a.wait_log("all 2 workers serving")
        time.sleep(0.2)
        stop.set()
        t.join()
        expect(link_id(a) == first_link, "a new link was attached instead of reusing the pinned one")
        expect(a.log_text().count("steering: sk_lookup program attached") == 2, "second start did not steer")
        for i in range(3):
            with kwire.connect(a.port) as s:
                expect(answered(s, i + 1), "no answer after the restart")
        # The counters live in the pinned maps: they keep adding up across the restart.
        picks_after = status(a)["counters"]["bootstrap_pick"]
        expect(picks_after >= picks_before + 3, "counters restarted: %d -> %d" % (picks_before, picks_after))
        print("    agent restart: same link id %d, bootstrap refused for %.0f ms at most (%d failed probes)"
              % (first_link, longest[0] * 1000, len(refused)))
        expect(longest[0] < 3.0, "bootstrap refused for %.1f s" % longest[0])
    finally:
        a.cleanup()


def test_agent_starts_without_bpf_privileges():
    """As an unprivileged user (no CAP_BPF) steering=auto falls back to SO_REUSEPORT with one warning."""
    need_root()  # to switch to nobody
    a = Agent(env={"SLUICE_WORKERS": "2"})
    os.chmod(a.workdir, 0o777)
    try:
        # The same binary as user nobody, without any capability.
        a.log = open(a.log_path, "ab")
        a.proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                   "--inh-caps=-all", "--bounding-set=-all", AGENT_BIN, "agent"],
                                  env=a.env, cwd=a.workdir, stdout=a.log, stderr=subprocess.STDOUT)
        wait_port(a.port, proc=a.proc)
        a.wait_log("all 2 workers serving")
        warnings = [l for l in a.log_text().splitlines() if "eBPF steering unavailable" in l]
        expect(len(warnings) == 1 and "locality is best effort" in warnings[0], "warning lines: %r" % warnings)
        out = run(["kcat", "-b", a.bootstrap, "-L"]).decode()
        expect("16 brokers" in out, out)
        with kwire.connect(a.port + 5) as s:
            expect(answered(s, 1), "slot port not served without BPF")
    finally:
        a.cleanup()
