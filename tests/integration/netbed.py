#!/usr/bin/python3
"""A test bed of hosts in network namespaces on this machine (addresses from 198.18.0.0/15 only):
a client, an L4 load balancer, a store host (PostgreSQL 15 + s3rver) and agent hosts with two
workers each, wired by Linux bridges in a switch namespace. Used by test_xdp.py and by
`make bench`; `tools/testbed up|down` runs it by hand.

  l2 variant (one segment, 198.18.0.0/24):
      client .10, balancer .2, store .3, agents .11, .12, ...
      (with the nftables balancer the client sits in 198.18.64.0/24 on the same bridge, and every
      agent routes that subnet via the balancer, which un-NATs the replies)
  routed variant (two segments joined by a router namespace, for xdp-mode ipip):
      segment 1, 198.18.1.0/24: router .1, balancer .2, store .3, client .10, agent .11
      segment 2, 198.18.2.0/24: router .1, agents .12, .13, ...

Balancers, both in front of the bootstrap port and every slot port, agents in load-balancer mode
advertising the balancer (SLUICE_DISCOVERY_KAFKA_HOSTNAME_OVERRIDE / _PORT_OVERRIDE):
  haproxy  HAProxy 2.6 in TCP mode, round robin, the same port on the chosen agent
  nft      nftables DNAT in the balancer's prerouting hook, a random agent per connection

Every host's veth has tx checksum offload off, and every bridge-side veth end runs a pass-only XDP
program: XDP_TX on a veth reaches the other end only when that end runs native XDP too.
Agents run under `nsenter --net` so they share the host's /sys/fs/bpf, as containers do.
Everything the bed makes (namespaces, processes, pins) is removed by cleanup(), atexit, and by
`netbed.py down`, which also finds what a killed run left (names start with "sb").
"""
import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import pgserver  # noqa: E402
import s3server  # noqa: E402

PYTHON = "/usr/bin/python3"
XDP_PASS = os.path.join(harness.ROOT, "build", "bpf", "xdp_pass.bpf.o")
KAFKA_PORT = 9092
PREFIX = "sb"


def sh(*cmd, check=True, timeout=60, input=None):
    p = subprocess.run(list(cmd), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout.decode(errors="replace")


def nsenter(ns):
    return ["nsenter", "--net=/run/netns/" + ns]


class Host:
    def __init__(self, bed, role, ip, seg, prefixlen=24):
        self.bed, self.role, self.ip, self.seg = bed, role, ip, seg
        self.ns = "%s-%s" % (bed.tag, role)
        self.port_name = "v%s" % role  # its bridge-side veth end, in the switch namespace
        self.prefixlen = prefixlen

    def run(self, *cmd, check=True, timeout=60, input=None):
        return sh(*(nsenter(self.ns) + list(cmd)), check=check, timeout=timeout, input=input)


class BedAgent(harness.Agent):
    """A sluice agent on one host of the bed: harness.Agent (log, sanitizer check, exit status on
    SIGTERM) started in the host's namespace."""

    def __init__(self, host, env):
        self.host = host
        super().__init__(env=env)
        del self.env["SLUICE_KAFKA_HOST"]  # the default: every address, as an agent on a host would
        self.env["SLUICE_KAFKA_PORT"] = str(KAFKA_PORT)
        self.port = KAFKA_PORT

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(nsenter(self.host.ns) + [harness.AGENT_BIN, "agent"] + self.args, env=self.env,
                                     cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while "all 2 workers serving" not in self.log_text():
            if self.proc.poll() is not None:
                raise AssertionError("agent on %s exited %s:\n%s" % (self.host.role, self.proc.returncode,
                                                                     self.log_text()[-3000:]))
            if time.time() > deadline:
                raise AssertionError("agent on %s not ready:\n%s" % (self.host.role, self.log_text()[-3000:]))
            time.sleep(0.05)

    @property
    def steering_name(self):
        return "agent-%d-%d" % (os.stat("/run/netns/" + self.host.ns).st_ino, KAFKA_PORT)

    def agent_id(self):
        """The random id of this run of the agent (its members are "<id>-w<worker>")."""
        return re.search(r"config: agent=([0-9a-f]+)", self.log_text()).group(1)

    def status(self):
        return json.loads(self.host.run(harness.AGENT_BIN, "steer", "status", "--name", self.steering_name, "--json"))

    def remove_steering_pins(self):
        if os.path.exists("/sys/fs/bpf/sluice/" + self.steering_name):
            sh(harness.AGENT_BIN, "steer", "remove", "--name", self.steering_name, check=False)


class NetBed:
    def __init__(self, agents=3, routed=False, balancer="haproxy", xdp="l2", slots=16, workers=2, env=None,
                 client_conf=None):
        if os.geteuid() != 0:
            raise harness.Skip("needs root for network namespaces and BPF")
        if not os.path.exists(XDP_PASS):
            raise AssertionError("%s is missing (make build/bpf/xdp_pass.bpf.o)" % XDP_PASS)
        self.tag = "%s%d%02d" % (PREFIX, os.getpid() % 100000, random.randrange(100))
        self.routed, self.balancer_kind, self.xdp = routed, balancer, xdp
        self.slots, self.workers = slots, workers
        self.extra_env = dict(env or {})
        self.client_conf = dict(client_conf or {})  # librdkafka settings for bed_client.py (e.g. TLS)
        self.dir = tempfile.mkdtemp(prefix="sluice-bed-")
        self.hosts, self.agents, self.procs = {}, [], []
        self.pg = self.s3 = None
        atexit.register(self.cleanup)
        try:
            self._build(agents)
        except BaseException:
            self.cleanup()
            raise

    # ---- topology ----

    def _seg_ip(self, seg, n):
        return "198.18.%d.%d" % (0 if not self.routed else seg, n)

    def _add_host(self, role, ip, seg, prefixlen=24):
        h = Host(self, role, ip, seg, prefixlen)
        sh("ip", "netns", "add", h.ns)
        sh("ip", "link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", h.port_name, "netns", self.sw)
        sw = nsenter(self.sw)
        sh(*sw, "ip", "link", "set", h.port_name, "master", "br%d" % seg, "up")
        sh(*sw, "ip", "link", "set", "dev", h.port_name, "xdpdrv", "obj", XDP_PASS, "sec", "xdp")
        sh(*sw, "ethtool", "-K", h.port_name, "tx", "off")
        h.run("ip", "addr", "add", "%s/%d" % (ip, prefixlen), "dev", "eth0")
        h.run("ip", "link", "set", "eth0", "up")
        h.run("ip", "link", "set", "lo", "up")
        h.run("ethtool", "-K", "eth0", "tx", "off")
        if self.routed and role != "router":
            h.run("ip", "route", "add", "default", "via", self._seg_ip(seg, 1))
        self.hosts[role] = h
        return h

    def _build(self, nagents):
        self.sw = self.tag + "-sw"
        sh("ip", "netns", "add", self.sw)
        for seg in (1, 2) if self.routed else (1,):
            sh(*nsenter(self.sw), "ip", "link", "add", "br%d" % seg, "type", "bridge")
            sh(*nsenter(self.sw), "ip", "link", "set", "br%d" % seg, "up")
        if self.routed:
            r = self._add_host("router", self._seg_ip(1, 1), 1)
            # A second leg on segment 2.
            sh("ip", "link", "add", "eth1", "netns", r.ns, "type", "veth", "peer", "name", "vrouter2", "netns", self.sw)
            sh(*nsenter(self.sw), "ip", "link", "set", "vrouter2", "master", "br2", "up")
            sh(*nsenter(self.sw), "ip", "link", "set", "dev", "vrouter2", "xdpdrv", "obj", XDP_PASS, "sec", "xdp")
            sh(*nsenter(self.sw), "ethtool", "-K", "vrouter2", "tx", "off")
            r.run("ip", "addr", "add", self._seg_ip(2, 1) + "/24", "dev", "eth1")
            r.run("ip", "link", "set", "eth1", "up")
            r.run("ethtool", "-K", "eth1", "tx", "off")
            # Forward, and let the owners' replies (another agent's source address, direct server
            # return) through: no reverse-path filter, no redirects.
            for k, v in (("ip_forward", "1"), ("conf/all/rp_filter", "0"), ("conf/eth0/rp_filter", "0"),
                         ("conf/eth1/rp_filter", "0"), ("conf/all/send_redirects", "0")):
                r.run("sysctl", "-qw", "net.ipv4.%s=%s" % (k.replace("/", "."), v))
        self.lb = self._add_host("lb", self._seg_ip(1, 2), 1)
        self.store = self._add_host("store", self._seg_ip(1, 3), 1)
        if self.balancer_kind == "nft":
            # The client in a subnet of its own, reached through the balancer.
            self.client = self._add_host("client", "198.18.64.10", 1)
            self.lb.run("ip", "addr", "add", "198.18.64.2/24", "dev", "eth0")
            self.client.run("ip", "route", "add", "default", "via", "198.18.64.2")
            self.vip = "198.18.64.2"
        else:
            self.client = self._add_host("client", self._seg_ip(1, 10), 1)
            self.vip = self.lb.ip

        self.pg = pgserver.PgServer(host=self.store.ip, netns=self.store.ns)
        self.s3 = s3server.S3Server(host=self.store.ip, netns=self.store.ns)
        self.agent_hosts = []
        for i in range(nagents):
            self.agent_hosts.append(self._agent_host(i))
        self._start_balancer()
        for h in self.agent_hosts:
            self.start_agent(h)
        for a in self.agents:
            a.wait_ready()
        self.wait_balancer()
        self.wait_converged()

    def wait_converged(self, timeout=20):
        """With XDP: until every agent's slot table is the same and names every agent host (each
        agent has read the whole group's membership), with every host's MAC resolved."""
        if not self.xdp:
            return
        want = {h.ip for h in self.agent_hosts if any(a.host is h for a in self.agents)}
        deadline = time.time() + timeout
        while True:
            tables, resolved = [], True
            for a in self.agents:
                slots = a.status()["xdp"]["slots"]
                tables.append(tuple((s["owner"]["address"], s["previous"]["address"]) for s in slots))
                resolved = resolved and all(h["mac"] != "00:00:00:00:00:00" for s in slots
                                            for h in (s["owner"], s["previous"]) if h["address"])
            seen = {addr for t in tables for pair in t for addr in pair} - {""}
            if len(set(tables)) == 1 and seen == want and resolved:
                return
            if time.time() > deadline:
                raise AssertionError("agents' XDP tables never converged on %r: saw %r" % (sorted(want), sorted(seen)))
            time.sleep(0.2)

    def _agent_host(self, i):
        seg = 1 if not self.routed or i == 0 else 2
        h = self._add_host("a%d" % (i + 1), self._seg_ip(seg, 11 + i), seg)
        if self.balancer_kind == "nft":
            h.run("ip", "route", "add", "198.18.64.0/24", "via", self.lb.ip)
        return h

    # ---- balancers ----

    def _ports(self):
        return KAFKA_PORT, KAFKA_PORT + self.slots

    def _start_balancer(self):
        lo, hi = self._ports()
        if self.balancer_kind == "haproxy":
            servers = "\n".join("  server %s %s check port %d inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions"
                                % (h.role, h.ip, KAFKA_PORT) for h in self.agent_hosts)
            cfg = os.path.join(self.dir, "haproxy.cfg")
            with open(cfg, "w") as f:
                f.write("global\n  maxconn 4000\n  stats socket %s mode 600 level admin\n"
                        "defaults\n  mode tcp\n  timeout connect 3s\n" % self._haproxy_socket() +
                        "  timeout client 1h\n  timeout server 1h\n  retries 3\n  option redispatch\n"
                        "frontend kafka\n  bind %s:%d-%d\n  default_backend agents\n"
                        "backend agents\n  balance roundrobin\n%s\n" % (self.vip, lo, hi, servers))
            log = open(os.path.join(self.dir, "haproxy.log"), "ab")
            p = subprocess.Popen(nsenter(self.lb.ns) + ["haproxy", "-db", "-f", cfg], stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(p)
        else:
            for k, v in (("ip_forward", "1"), ("conf.all.send_redirects", "0"), ("conf.eth0.send_redirects", "0")):
                self.lb.run("sysctl", "-qw", "net.ipv4.%s=%s" % (k, v))
            targets = ", ".join("%d : %s" % (i, h.ip) for i, h in enumerate(self.agent_hosts))
            rules = ("table ip sluicebed {\n chain prerouting {\n  type nat hook prerouting priority dstnat;\n"
                     "  ip daddr %s tcp dport %d-%d dnat to numgen random mod %d map { %s }\n }\n}\n"
                     % (self.vip, lo, hi, len(self.agent_hosts), targets))
            self.lb.run("nft", "-f", "-", input=rules.encode())

    def _haproxy_socket(self):
        return os.path.join(self.dir, "haproxy.sock")

    def haproxy(self, command):
        """A command on HAProxy's stats socket (a file: reachable from any namespace)."""
        import socket as sk
        with sk.socket(sk.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self._haproxy_socket())
            s.sendall(command.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out.decode()
                out += chunk

    def wait_balancer(self, timeout=20):
        """Until HAProxy's health checks see every agent it balances over as up."""
        if self.balancer_kind != "haproxy":
            return
        deadline = time.time() + timeout
        while True:
            try:
                lines = [l.split() for l in self.haproxy("show servers state agents").splitlines()[2:] if l.strip()]
                if lines and all(l[5] == "2" for l in lines):
                    return
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError("HAProxy does not see every agent up")
            time.sleep(0.1)

    # ---- agents ----

    def agent_env(self, host):
        e = {"SLUICE_WORKERS": str(self.workers), "SLUICE_SLOTS": str(self.slots), "SLUICE_STEERING": "on",
             "SLUICE_HEARTBEAT_TIMEOUT": "2s", "SLUICE_METADATA_URL": self.pg.url,
             "SLUICE_ADVERTISE_HOSTNAME_STRATEGY": "custom", "SLUICE_ADVERTISE_HOSTNAME_CUSTOM": host.ip,
             "SLUICE_DISCOVERY_KAFKA_HOSTNAME_OVERRIDE": self.vip,
             "SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE": str(KAFKA_PORT + 1), **self.s3.agent_env("bed")}
        if self.xdp:
            e.update({"SLUICE_XDP_INTERFACE": "eth0", "SLUICE_XDP_MODE": self.xdp})
        e.update(self.extra_env)
        return e

    def start_agent(self, host):
        a = BedAgent(host, self.agent_env(host)).start()
        self.agents.append(a)
        return a

    def add_agent_host(self):
        """A new agent host on the bridge (segment 2 when routed), not in the balancer's list:
        connections reach it only through the other hosts' forwarding."""
        h = self._agent_host(len(self.agent_hosts))
        self.agent_hosts.append(h)
        a = self.start_agent(h)
        a.wait_ready()
        self.wait_converged()
        return a

    def tear_down_agent_host(self, agent):
        """SIGKILL to the whole agent, then the host's namespace goes (its address with it)."""
        agent.kill9()
        agent.remove_steering_pins()
        sh("ip", "netns", "del", agent.host.ns, check=False)
        self.agents.remove(agent)
        shutil.rmtree(agent.workdir, ignore_errors=True)

    # ---- clients ----

    @property
    def bootstrap(self):
        return "%s:%d" % (self.vip, KAFKA_PORT)

    def client_cmd(self, *args):
        conf = ["env", "BED_CLIENT_CONF=" + json.dumps(self.client_conf)] if self.client_conf else []
        return nsenter(self.client.ns) + conf + [PYTHON, os.path.join(HERE, "bed_client.py")] + list(args) + \
            ["--bootstrap", self.bootstrap]

    def client_run(self, *args, timeout=300):
        out = sh(*self.client_cmd(*args), timeout=timeout)
        return json.loads(out)

    def client_start(self, *args):
        """A client in the background; finish it with client_stop()."""
        out = open(os.path.join(self.dir, "client-%d.json" % len(self.procs)), "w+b")
        p = subprocess.Popen(self.client_cmd(*args), stdout=out, stderr=subprocess.DEVNULL)
        p.out = out
        self.procs.append(p)
        return p

    def client_stop(self, p, timeout=120):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout)
        p.out.seek(0)
        return json.loads(p.out.read())

    # ---- what the store says ----

    def members(self):
        """The live members of the group: {member id: forward address}."""
        rows = self.pg.psql("sluice", "SELECT id, fwd_addr FROM members WHERE heartbeat_ms > "
                            "(extract(epoch from clock_timestamp()) * 1000)::bigint - 2000")
        return dict(line.split("|") for line in rows.splitlines() if line)

    def owners(self, topic, partitions):
        """{partition: member id of its owner worker}, computed as every agent does
        (cluster/slots.c): partition -> slot -> the live member with the best rendezvous score."""
        ids = sorted(self.members())
        out = {}
        for p in range(partitions):
            slot = (topic_hash(topic) + p) % self.slots
            out[p] = max(ids, key=lambda m: mix(mix(slot) ^ member_hash(m)))
        return out

    def locality(self, topic, seconds=None, owners=None):
        """Per partition: bytes by writer (object keys name the member that wrote them). Returns
        {"top_share": mean share of a partition's bytes written by its top writer,
         "owner_share": mean share written by its owner worker (with owners, from owners()),
         "writers": mean writers per partition, "objects_per_partition_s": ..., "partitions": n}."""
        rows = self.pg.psql("sluice", "SELECT c.partition, o.key, c.len FROM chunks c JOIN objects o "
                            "ON o.id = c.object_id JOIN topics t ON t.id = c.topic_id WHERE t.name = '%s'" % topic)
        by_part = {}
        for line in rows.splitlines():
            part, key, length = line.split("|")
            m = re.match(r"objects/\d+-([0-9a-f]+-w\d+)-\d+\.obj", key)
            if not m:  # written by compaction (objects/<ms>-<agent>-compact-<n>.obj): no one flush's writer
                continue
            d = by_part.setdefault(int(part), {"writers": {}, "objects": 0})
            d["writers"][m.group(1)] = d["writers"].get(m.group(1), 0) + int(length)
            d["objects"] += 1
        if not by_part:
            return {"top_share": 0, "writers": 0, "objects_per_partition_s": 0, "partitions": 0}
        shares = [max(d["writers"].values()) / sum(d["writers"].values()) for d in by_part.values()]
        if owners:
            own = [d["writers"].get(owners.get(p, ""), 0) / sum(d["writers"].values()) for p, d in by_part.items()]
        out = {"top_share": sum(shares) / len(shares), "owner_share": sum(own) / len(own) if owners else None,
               "writers": sum(len(d["writers"]) for d in by_part.values()) / len(by_part),
               "partitions": len(by_part)}
        objects = sum(d["objects"] for d in by_part.values()) / len(by_part)
        out["objects_per_partition_s"] = objects / seconds if seconds else objects
        return out

    def chunks(self, topic):
        """How many chunks (one partition's range of one object) the topic's data is in."""
        return int(self.pg.psql("sluice", "SELECT count(*) FROM chunks c JOIN topics t ON t.id = c.topic_id "
                                          "WHERE t.name = '%s'" % topic))

    def store_gets(self):
        """GET requests the object store has answered so far (ranged reads of chunks by fetches)."""
        return self.s3.stats().get("methods", {}).get("GET", 0)

    def counters(self):
        """XDP counters summed over the agents."""
        total = {}
        for a in self.agents:
            for k, v in (a.status().get("xdp") or {}).get("counters", {}).items():
                total[k] = total.get(k, 0) + v
        return total

    # ---- teardown ----

    def stop_agents(self):
        """SIGTERM to every agent; each must exit 0 with no sanitizer report (harness.Agent)."""
        errors = []
        for a in self.agents:
            try:
                rc = a.stop()
                report = a.sanitizer_report()
                if report:
                    errors.append("sanitizer report on %s:\n%s" % (a.host.role, report))
                if rc != 0:
                    errors.append("agent on %s exited %s:\n%s" % (a.host.role, rc, a.log_text()[-2000:]))
            except Exception as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("\n".join(errors))

    def cleanup(self):
        atexit.unregister(self.cleanup)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for a in self.agents:
            if a.alive():
                a.kill9()
            a.remove_steering_pins()
            shutil.rmtree(a.workdir, ignore_errors=True)
        for srv in (self.pg, self.s3):
            if srv:
                srv.cleanup()
        remove_namespaces(self.tag)
        shutil.rmtree(self.dir, ignore_errors=True)


M64 = (1 << 64) - 1


def mix(x):
    """splitmix64's finaliser, as cluster/slots.c scores (slot, member)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def member_hash(member_id):
    h = 14695981039346656037
    for b in member_id.encode():
        h = ((h ^ b) * 1099511628211) & M64
    return h


def topic_hash(name):
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def remove_namespaces(tag):
    """Kills whatever runs in the bed's namespaces, then deletes them (their links go with them)."""
    for line in sh("ip", "netns", "list", check=False).splitlines():
        ns = line.split()[0] if line.strip() else ""
        if not ns.startswith(tag + "-"):
            continue
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False)


def down():
    """Removes every bed a killed run left: namespaces named sb*-*, and their agents' pins."""
    tags = set()
    for line in sh("ip", "netns", "list", check=False).splitlines():
        m = re.match(r"(%s\d+)-" % PREFIX, line)
        if m:
            tags.add(m.group(1))
    for tag in tags:
        for line in sh("ip", "netns", "list", check=False).splitlines():
            ns = line.split()[0] if line.strip() else ""
            if ns.startswith(tag + "-"):
                name = "agent-%d-%d" % (os.stat("/run/netns/" + ns).st_ino, KAFKA_PORT)
                if os.path.exists("/sys/fs/bpf/sluice/" + name):
                    sh(harness.AGENT_BIN, "steer", "remove", "--name", name, check=False)
        remove_namespaces(tag)
    print("removed %d bed(s)" % len(tags))


def main():
    import argparse
    ap = argparse.ArgumentParser(description="sluice network-namespace test bed")
    ap.add_argument("command", choices=["up", "down"])
    ap.add_argument("--routed", action="store_true")
    ap.add_argument("--balancer", choices=["haproxy", "nft"], default="haproxy")
    ap.add_argument("--xdp", choices=["off", "l2", "ipip"], default="l2")
    ap.add_argument("--agents", type=int, default=3)
    a = ap.parse_args()
    if a.command == "down":
        down()
        return
    bed = NetBed(agents=a.agents, routed=a.routed, balancer=a.balancer, xdp=None if a.xdp == "off" else a.xdp)
    print("bed %s is up: bootstrap %s (run clients with: nsenter --net=/run/netns/%s ...)"
          % (bed.tag, bed.bootstrap, bed.client.ns))
    for h in bed.hosts.values():
        print("  %-7s %-15s netns %s" % (h.role, h.ip, h.ns))
    print("agent logs: " + " ".join(a.log_path for a in bed.agents))
    print("Ctrl-C tears it all down.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        bed.cleanup()


if __name__ == "__main__":
    main()
