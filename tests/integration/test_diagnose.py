"""`sluice diagnose-connection` against real agents: a healthy one (every slot listed and answering,
text and --json, the same brokers librdkafka sees), agents that advertise addresses nobody can
reach (a port override where nothing listens on 127.0.0.1, a host under .invalid, which is never
looked up), a port where something that is not Kafka answers, and bad flags. Nothing is sent
off this machine."""
import json
import re
import socket
import struct
import subprocess
import threading
import time

from confluent_kafka.admin import AdminClient

import kwire
from harness import AGENT_BIN, Agent, expect, free_port, free_port_block

PROG = "sluice diagnose-connection: "


def diagnose(port, *args, host="127.0.0.1", timeout=60):
    t0 = time.time()
    p = subprocess.run([AGENT_BIN, "diagnose-connection", "--bootstrap-host", host, "--bootstrap-port", str(port)]
                       + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode(), time.time() - t0


def diagnose_json(port, *args):
    rc, out, err, _ = diagnose(port, "--json", *args)
    lines = out.strip().splitlines()
    expect(len(lines) == 1, "--json printed %d lines: %r %r" % (len(lines), out, err))
    return rc, json.loads(lines[0])


def broker_rows(out):
    """node id -> (address, result) from the text table."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+)\s+(-|[0-9.]+)\s+(-|[0-9.]+)\s+(-|[0-9.]+)\s+(.*)$", line)
        if m:
            rows[int(m.group(1))] = (m.group(2), m.group(6))
    return rows


def test_diagnose_healthy_agent_lists_every_slot():
    a = Agent().start()
    try:
        rc, out, err, secs = diagnose(a.port)
        expect(rc == 0, "exit %d: %s %s" % (rc, out, err))
        expect(re.search(r"bootstrap 127\.0\.0\.1:%d .*connect [0-9.]+ ms, ApiVersions [0-9.]+ ms: ok "
                         r"\(ApiVersions v3, \d+ API ranges\)" % a.port, out), out)
        expect(re.search(r"metadata v12: [0-9.]+ ms, cluster sluice, controller 0, 16 brokers", out), out)
        rows = broker_rows(out)
        expect(sorted(rows) == list(range(16)), "slots listed: %r\n%s" % (sorted(rows), out))
        for s, (addr, result) in rows.items():
            expect(addr == "127.0.0.1:%d" % (a.port + 1 + s) and result == "ok", (s, addr, result))
        expect("16 of 16 brokers answered." in out, out)
        expect("SLUICE_" not in out, "advice printed for a healthy agent:\n" + out)

        rc, j = diagnose_json(a.port)
        expect(rc == 0, j)
        b = j["bootstrap"]
        expect(b["result"] == "ok" and b["port"] == a.port and b["api_versions_version"] == 3, b)
        expect(b["api_ranges"] >= 20 and b["connect_ms"] >= 0 and b["api_versions_ms"] > 0, b)
        md = j["metadata"]
        expect(md["result"] == "ok" and md["cluster_id"] == "sluice" and md["controller_id"] == 0, md)
        expect(md["brokers"] == 16 and md["version"] == 12, md)
        expect(j["brokers_ok"] == 16 and j["brokers_failed"] == 0 and j["advice"] == [], j)
        # The same brokers a real client (librdkafka) is given.
        seen = {(x["node_id"], x["host"], x["port"]) for x in j["brokers"]}
        md2 = AdminClient({"bootstrap.servers": a.bootstrap}).list_topics(timeout=10)
        expect(seen == {(n, x.host, x.port) for n, x in md2.brokers.items()}, (seen, md2.brokers))
        for x in j["brokers"]:
            expect(x["result"] == "ok" and x["address"] == "127.0.0.1" and x["api_ranges"] == b["api_ranges"], x)
            expect(x["latency_ms"] >= x["api_versions_ms"] > 0, x)
        expect(a.alive(), "agent died")
    finally:
        a.cleanup()


def test_diagnose_port_override_where_nothing_listens():
    nowhere = free_port_block(16)  # nothing listens there: every advertised broker is refused
    a = Agent(env={"SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE": str(nowhere)}).start()
    try:
        rc, out, err, secs = diagnose(a.port)
        expect(rc == 1, "exit %d: %s %s" % (rc, out, err))
        expect(secs < 20, "took %.1fs" % secs)
        rows = broker_rows(out)
        expect(sorted(rows) == list(range(16)), out)
        for s, (addr, result) in rows.items():
            expect(addr == "127.0.0.1:%d" % (nowhere + s) and result.startswith("connection refused"),
                   (s, addr, result))
        expect("0 of 16 brokers answered." in out, out)
        expect("refuses the advertised ports %d..%d" % (nowhere, nowhere + 15) in out, out)
        expect("SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE" in out, out)

        rc, j = diagnose_json(a.port)
        expect(rc == 1 and j["bootstrap"]["result"] == "ok" and j["brokers_failed"] == 16, j)
        expect(all(x["result"] == "connection refused" and x["connect_ms"] is None for x in j["brokers"]), j)
        expect(any("SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE" in line for line in j["advice"]), j["advice"])
    finally:
        a.cleanup()


def test_diagnose_part_of_the_ports_forwarded():
    # 4 slots at port+1..port+4; advertised from port+3: slots 0 and 1 land on real slot ports
    # (any worker serves any slot), slots 2 and 3 on port+5, port+6 where nothing listens.
    a = Agent(env={"SLUICE_SLOTS": "4"})
    a.env["SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE"] = str(a.port + 3)
    a.start()
    try:
        rc, j = diagnose_json(a.port)
        expect(rc == 1, j)
        results = {x["node_id"]: x["result"] for x in j["brokers"]}
        expect(results == {0: "ok", 1: "ok", 2: "connection refused", 3: "connection refused"}, results)
        expect(j["brokers_ok"] == 2 and j["brokers_failed"] == 2, j)
        expect(any("Some brokers answered" in line for line in j["advice"]), j["advice"])
    finally:
        a.cleanup()


def test_diagnose_hostname_override_that_does_not_resolve():
    a = Agent(env={"SLUICE_DISCOVERY_KAFKA_HOSTNAME_OVERRIDE": "nonexistent.invalid"}).start()
    try:
        rc, out, err, secs = diagnose(a.port)
        expect(rc == 1, "exit %d: %s %s" % (rc, out, err))
        rows = broker_rows(out)
        expect(sorted(rows) == list(range(16)), out)
        for s, (addr, result) in rows.items():
            expect(addr == "nonexistent.invalid:%d" % (a.port + 1 + s) and result.startswith("name does not resolve"),
                   (s, addr, result))
        expect("The agent advertises host 'nonexistent.invalid', which does not resolve here" in out, out)
        for setting in ("SLUICE_DISCOVERY_KAFKA_HOSTNAME_OVERRIDE=127.0.0.1", "SLUICE_PRIVATE_IP_OVERRIDE=127.0.0.1",
                        "SLUICE_AGENT_GROUP", "--client-id ws_host_override=127.0.0.1"):
            expect(setting in out, "%s not in:\n%s" % (setting, out))

        # The advice works: the client id's ws_host_override makes every broker reachable.
        rc, j = diagnose_json(a.port, "--client-id", "app-7,ws_host_override=127.0.0.1")
        expect(rc == 0 and j["brokers_ok"] == 16 and j["client_id"] == "app-7,ws_host_override=127.0.0.1", j)
        expect({x["host"] for x in j["brokers"]} == {"127.0.0.1"}, j)
    finally:
        a.cleanup()


class NotKafka:
    """Listens on ports base..base+n-1 of 127.0.0.1 and answers every connection with an HTTP error
    (silent=True: never accepts, so connections complete and nothing ever answers)."""

    def __init__(self, base, n, silent=False):
        self.socks = []
        for p in range(base, base + n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            s.listen(16)
            s.settimeout(0.2)
            self.socks.append(s)
        self.stop = silent
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            for s in self.socks:
                try:
                    c, _ = s.accept()
                except OSError:
                    continue
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                c.close()

    def close(self):
        self.stop = True
        self.thread.join()
        for s in self.socks:
            s.close()


def test_diagnose_not_kafka_at_the_advertised_ports():
    base = free_port_block(4)
    nk = NotKafka(base, 4)
    a = Agent(env={"SLUICE_SLOTS": "4", "SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE": str(base)}).start()
    try:
        rc, j = diagnose_json(a.port)
        expect(rc == 1 and j["brokers_failed"] == 4, j)
        for x in j["brokers"]:
            # "HTTP" read as a length prefix: 1213486160 bytes, refused before anything is allocated.
            expect(x["result"] == "protocol error" and "1213486160" in x["detail"], x)
        expect(any("is not a broker of this cluster" in line for line in j["advice"]), j["advice"])
    finally:
        a.cleanup()
        nk.close()


def test_diagnose_bad_flags_exit_2_with_one_line():
    port = free_port()
    cases = [[], ["--bootstrap-port", "9092"], ["--bootstrap-host"], ["--bootstrap-host", ""],
             ["--bootstrap-host", "a b"], ["--bootstrap-host", "h", "--bootstrap-port", "0"],
             ["--bootstrap-host", "h", "--bootstrap-port", "x"], ["--bootstrap-host", "h", "--bogus"],
             ["--bootstrap-host", "h", "--timeout", "nan"], ["--bootstrap-host", "h", "--timeout", "0"],
             ["--bootstrap-host", "h", "--json=1"], ["--bootstrap-host", "h", "extra"],
             ["--bootstrap-host", "h", "--client-id", "a\nb"], ["--bootstrap-host", "h", "-x"]]
    for args in cases:
        p = subprocess.run([AGENT_BIN, "diagnose-connection"] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        err = p.stderr.decode()
        expect(p.returncode == 2, "%r exited %d: %r" % (args, p.returncode, err))
        expect(len(err.splitlines()) == 1 and err.startswith(PROG), "%r: stderr %r" % (args, err))
        expect(p.stdout == b"", "%r printed %r" % (args, p.stdout))
    p = subprocess.run([AGENT_BIN, "diagnose-connection", "--help"], stdout=subprocess.PIPE, timeout=30)
    expect(p.returncode == 0 and b"--bootstrap-host" in p.stdout, p)

    # Nothing at the bootstrap: exit 1 at once, saying so.
    rc, out, err, secs = diagnose(port)
    expect(rc == 1 and "connection refused" in out and "did not answer" in out, (rc, out, err))
    expect(secs < 10, "took %.1fs" % secs)
    rc, j = diagnose_json(port)
    expect(rc == 1 and j["bootstrap"]["result"] == "connection refused" and j["metadata"] is None, j)
    expect(j["brokers"] == [] and len(j["advice"]) == 1, j)
    # A bootstrap host that never resolves, and nobody is asked.
    rc, j = diagnose_json(port, "--bootstrap-host", "nowhere.invalid")
    expect(rc == 1 and j["bootstrap"]["result"] == "name does not resolve", j)


def test_diagnose_silent_ports_time_out_within_the_bound():
    base = free_port_block(4)
    nk = NotKafka(base, 4, silent=True)
    a = Agent(env={"SLUICE_SLOTS": "4", "SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE": str(base)}).start()
    try:
        t0 = time.time()
        rc, j = diagnose_json(a.port, "--timeout", "0.5")
        secs = time.time() - t0
        expect(rc == 1 and j["brokers_failed"] == 4, j)
        for x in j["brokers"]:  # connected (the kernel's backlog), then no ApiVersions answer
            expect(x["result"] == "timeout" and x["connect_ms"] is not None and x["api_versions_ms"] is None, x)
            expect("no ApiVersions answer within the timeout" in x["detail"], x)
        expect(secs < 5, "4 brokers probed with --timeout 0.5 took %.1fs" % secs)  # in parallel
        expect(any("is not a broker of this cluster" in line for line in j["advice"]), j["advice"])
    finally:
        a.cleanup()
        nk.close()


class OldBroker:
    """A hand-made Kafka broker that knows only ApiVersions v0-2 and Metadata v0-1, and advertises
    itself as node 7: the KIP-511 path (v3 refused with a v0 body) and an old Metadata."""

    def __init__(self, lying=False):
        self.lying = lying  # Metadata claims 1,000,000 brokers in a few bytes
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.seen = []  # (api key, version) of every request, in order
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        with c:
            while True:
                head = c.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    return
                frame = c.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
                key, ver, corr = struct.unpack(">hhi", frame[:8])
                self.seen.append((key, ver))
                if key == 18 and ver > 2:  # KIP-511: UNSUPPORTED_VERSION, a v0 body with our range
                    body = struct.pack(">hi", 35, 1) + struct.pack(">hhh", 18, 0, 2)
                elif key == 18:
                    body = struct.pack(">hi", 0, 2) + struct.pack(">hhhhhh", 18, 0, 2, 3, 0, 1)
                    body += struct.pack(">i", 0) if ver >= 1 else b""
                elif key == 3 and ver == 1:  # brokers [7 at us], controller 7, no topics
                    body = (struct.pack(">ii", 1000000 if self.lying else 1, 7) + kwire.string("127.0.0.1") + struct.pack(">ih", self.port, -1)
                            + struct.pack(">ii", 7, 0))
                else:
                    return
                out = struct.pack(">i", corr) + body
                c.sendall(struct.pack(">i", len(out)) + out)

    def close(self):
        self.sock.close()


def test_diagnose_old_broker_kip511_and_metadata_v1():
    ob = OldBroker()
    try:
        rc, j = diagnose_json(ob.port)
        expect(rc == 0, j)
        b = j["bootstrap"]
        expect(b["result"] == "ok" and b["api_versions_version"] == 2 and b["api_ranges"] == 2, b)
        md = j["metadata"]
        expect(md["version"] == 1 and md["cluster_id"] is None and md["controller_id"] == 7 and md["brokers"] == 1, md)
        expect(len(j["brokers"]) == 1, j)
        x = j["brokers"][0]
        expect(x["node_id"] == 7 and x["port"] == ob.port and x["result"] == "ok" and x["api_versions_version"] == 2, x)
        expect(ob.seen == [(18, 3), (18, 2), (3, 1), (18, 3), (18, 2)], ob.seen)
    finally:
        ob.close()


def test_diagnose_metadata_that_lies_is_a_protocol_error():
    ob = OldBroker(lying=True)
    try:
        rc, out, err, secs = diagnose(ob.port)
        expect(rc == 1 and err == "", (rc, out, err))
        expect(re.search(r"metadata v1: protocol error \(Metadata v1 answer: array count exceeds the remaining bytes\)",
                         out), out)
        expect("is it a Kafka broker?" in out, out)
    finally:
        ob.close()
