"""Kernel-side steering on one host (needs root: BPF and bpffs). An agent with 2 workers: every
slot port reaches its owner, bootstrap connections spread by load, partitions stay on one worker,
a killed worker's slots come back, and the pinned counters match what the test did."""
import json
import os
import re
import shutil
import signal
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


def test_tls_slot_connections_land_on_the_slot_owner():
    """The same check over TLS: the handshake runs on the worker the kernel chose, the slot's owner."""
    import ssl
    from test_tls import Certs
    certs = Certs()
    a = steering_agent(SLUICE_TLS_ENABLED="true", SLUICE_TLS_SERVER_CERT_FILE=certs.p("server.pem"),
                       SLUICE_TLS_SERVER_PRIVATE_KEY_FILE=certs.p("server.key"))
    try:
        owners = slot_owners(a)
        expect(set(owners.values()) == {0, 1}, "both workers own slots: %r" % owners)
        ctx = ssl.create_default_context(cafile=certs.p("ca.pem"))
        socks, want = [], {}
        for i in range(48):
            slot = i % SLOTS
            raw = kwire.connect(a.port + 1 + slot)
            want[(raw.getsockname()[1], a.port + 1 + slot)] = owners[slot]
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            expect(answered(s, i + 1), "slot %d: no answer over TLS" % slot)
            socks.append(s)
        seen = wait_accepted(a, want)
        wrong = [(p, w, seen.get(p)) for p, w in want.items() if seen.get(p) != w]
        expect(not wrong, "TLS connections not on the slot owner (client port, owner, accepted by): %r" % wrong)
        expect(a.log_text().count("TLS TLSv1.3 established") >= 48, "handshakes not logged")
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


def test_bound_address_only():
    """Bound to 127.0.0.1 (the harness's default), the steered ports are not served on the other
    local addresses: 127.0.0.2 is local too (all of 127/8 is), but nobody listens there."""
    a = steering_agent()
    try:
        for port in (a.port, a.port + 1, a.port + SLOTS):
            with kwire.connect(port) as s:
                expect(answered(s, 1), "127.0.0.1:%d not answered" % port)
            try:
                kwire.connect(port, host="127.0.0.2", timeout=3).close()
                raise AssertionError("127.0.0.2:%d was accepted though the agent is bound to 127.0.0.1" % port)
            except ConnectionRefusedError:
                pass
        st = status(a)["counters"]
        print("    127.0.0.2 refused on the bootstrap and slot ports; other_address=%d" % st["other_address"])
        expect(st["other_address"] == 3, "other_address counter %r" % st)
    finally:
        a.cleanup()


def test_ipv6_client_of_a_default_agent():
    """The default listener (::) serves IPv6 clients, steered like IPv4 ones."""
    need_root()
    a = Agent(env={"SLUICE_WORKERS": "2", "SLUICE_SLOTS": str(SLOTS), "SLUICE_STEERING": "on",
                   "SLUICE_LOG_LEVEL": "debug", "SLUICE_ADVERTISE_HOSTNAME_STRATEGY": "custom",
                   "SLUICE_ADVERTISE_HOSTNAME_CUSTOM": "::1"})
    del a.env["SLUICE_KAFKA_HOST"]  # the default
    a.start()
    try:
        a.wait_log("all 2 workers serving")
        expect("kafka=[::]:%d" % a.port in a.log_text(), "not listening on [::] by default")
        bootstrap = "[::1]:%d" % a.port
        conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v6"}
        admin = AdminClient(conf)
        admin.create_topics([NewTopic("six", 4, 1)])["six"].result(10)
        p = Producer(dict(conf, acks="all", **{"linger.ms": 5}))
        for i in range(2000):
            p.produce("six", b"v6-%d" % i, partition=i % 4)
        expect(p.flush(30) == 0, "undelivered messages over IPv6")
        c = Consumer(dict(conf, **{"group.id": "six", "enable.auto.commit": False}))
        c.assign([TopicPartition("six", part, 0) for part in range(4)])
        got = set()
        deadline = time.time() + 30
        while len(got) < 2000 and time.time() < deadline:
            for m in c.consume(1000, timeout=0.5):
                expect(m.error() is None, "consume error %r" % m.error())
                got.add(m.value())
        c.close()
        expect(got == {b"v6-%d" % i for i in range(2000)}, "consumed %d of 2000 over IPv6" % len(got))
        v6 = re.findall(r"worker \d+ accepted \[::1\]:\d+ on port (\d+)", a.log_text())
        slot_conns = [int(p) for p in v6 if int(p) != a.port]
        st = status(a)["counters"]
        print("    IPv6: 2000 messages produced and consumed via [::1]; %d IPv6 slot connections steered "
              "(slot_hit=%d, assign_error=%d)" % (len(slot_conns), st["slot_hit"], st["assign_error"]))
        expect(slot_conns and st["assign_error"] == 0, "no IPv6 slot connection steered: %r" % st)
    finally:
        a.cleanup()


def test_worker_killed_during_a_connection_storm_refuses_nothing():
    """While a killed worker's slots wait for the supervisor to move them, the kernel program hands
    them to the live worker: a storm of new slot connections sees no refusal. The supervisor is
    stopped (SIGSTOP) across the kill, so that window lasts a second instead of a fraction of a
    millisecond: a supervisor busy elsewhere must not cost refused connections."""
    a = steering_agent(SLUICE_LOG_LEVEL="info")
    try:
        owners = slot_owners(a)
        victim_ports = [a.port + 1 + s for s, w in owners.items() if w == 0]
        stop = threading.Event()
        counts = {"ok": 0, "refused": 0, "reset": 0}
        lock = threading.Lock()

        def storm():
            i = 0
            while not stop.is_set():
                port = victim_ports[i % len(victim_ports)]
                i += 1
                try:
                    s = kwire.connect(port, timeout=2)
                except ConnectionRefusedError:
                    with lock:
                        counts["refused"] += 1
                    continue
                try:
                    ok = answered(s, 1)
                except OSError:
                    ok = False
                finally:
                    s.close()
                with lock:
                    counts["ok" if ok else "reset"] += 1

        threads = [threading.Thread(target=storm) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        pid = int(re.findall(r"worker 0 \(pid (\d+)\) serving", a.log_text())[-1])
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            os.kill(pid, 9)
            time.sleep(1.0)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(10)
        fallback = status(a)["counters"]["slot_fallback"]
        print("    storm over worker 0's %d slots across its kill -9: %d answered, %d refused, %d reset "
              "(accepted by the dying worker), slot_fallback=%d"
              % (len(victim_ports), counts["ok"], counts["refused"], counts["reset"], fallback))
        expect(counts["ok"] > 100, "storm too small: %r" % counts)
        expect(counts["refused"] == 0, "%d slot connections refused" % counts["refused"])
        expect(fallback > 0, "the storm never hit the window (slot_fallback=0)")
    finally:
        a.cleanup()


class NetnsAgent(Agent):
    """An agent in a network namespace of its own (lo only), started with nsenter --net so that it
    sees the host's /sys/fs/bpf, as containers sharing the host's bpffs do."""

    def __init__(self, netns, **kw):
        self.netns = netns
        super().__init__(**kw)
        self.env["SLUICE_KAFKA_PORT"] = "9092"
        self.port = 9092

    def nsenter(self):
        return ["nsenter", "--net=/run/netns/" + self.netns]

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.nsenter() + [AGENT_BIN, "agent"] + self.args, env=self.env,
                                     cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    @property
    def steering_name(self):
        return self.env.get("SLUICE_STEERING_NAME",
                            "agent-%d-9092" % os.stat("/run/netns/" + self.netns).st_ino)

    def kcat(self, *args, input=None):
        return run(self.nsenter() + ["kcat", "-b", "127.0.0.1:9092"] + list(args), input=input, timeout=60)


def test_agents_in_three_namespaces_share_bpffs_without_clashing():
    """Three agents with the same port in three network namespaces of one host (one bpffs): each
    gets pins of its own (the default name includes the namespace) and serves its own clients; a
    fourth that asks for another's name explicitly is refused with a clear error."""
    need_root()
    tag = "sl%d" % os.getpid()
    names = ["%s-%d" % (tag, i) for i in range(3)]
    agents = []
    try:
        for n in names:
            run(["ip", "netns", "add", n])
            run(["ip", "-n", n, "link", "set", "lo", "up"])
        for n in names:
            agents.append(NetnsAgent(n, env={"SLUICE_WORKERS": "2", "SLUICE_SLOTS": "4", "SLUICE_STEERING": "on"})
                          .start())
        for a in agents:
            a.wait_log("all 2 workers serving")
        dirs = {a.steering_name for a in agents}
        expect(len(dirs) == 3, "pin names collide: %r" % dirs)
        for a in agents:
            link = json.loads(run(["bpftool", "-j", "link", "show", "pinned",
                                   "/sys/fs/bpf/sluice/%s/link" % a.steering_name]))
            expect(link["netns_ino"] == os.stat("/run/netns/" + a.netns).st_ino,
                   "%s steers another namespace: %r" % (a.steering_name, link))
        for i, a in enumerate(agents):
            a.kcat("-P", "-t", "t", "-p", "0", input=b"\n".join(b"%s-%d" % (a.netns.encode(), j) for j in range(50)))
        for a in agents:
            got = a.kcat("-C", "-t", "t", "-p", "0", "-o", "beginning", "-e").split()
            expect(got == [b"%s-%d" % (a.netns.encode(), j) for j in range(50)],
                   "%s read back %d records" % (a.netns, len(got)))
        print("    3 agents on port 9092 in 3 namespaces: pins %s" % ", ".join(sorted(dirs)))

        # An explicit name that another live namespace's agent holds: refused, that agent untouched.
        run(["ip", "netns", "add", tag + "-x"])
        x = NetnsAgent(tag + "-x", env={"SLUICE_WORKERS": "1", "SLUICE_STEERING": "on",
                                        "SLUICE_STEERING_NAME": agents[0].steering_name})
        x.start()
        expect(x.proc.wait(20) == 1, "agent with a taken steering name did not exit 1")
        line = [l for l in x.log_text().splitlines() if "in use by the agent of network namespace" in l]
        print("    " + (line[0].split(" ", 2)[-1] if line else "(no line)"))
        expect(line, "no clear error line: %s" % x.log_text()[-1000:])
        got = agents[0].kcat("-C", "-t", "t", "-p", "0", "-o", "beginning", "-e").split()
        expect(len(got) == 50, "the first agent stopped serving after the refused start")
        shutil.rmtree(x.workdir, ignore_errors=True)
    finally:
        for a in agents:
            try:
                a.cleanup()
            except Exception as e:
                print("    cleanup: %s" % e)
        for n in names + [tag + "-x"]:
            run(["ip", "netns", "del", n], check=False)
