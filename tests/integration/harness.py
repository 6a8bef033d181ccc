"""Integration-test harness: starts real sluice agents in temp folders on free ports, runs real
clients against them, and prints one line per test plus "N passed, N failed, N skipped".

Tests live in test_*.py beside this file; run.py runs them. Use Debian's interpreter
(/usr/bin/python3): it is the one with confluent_kafka.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT_BIN = os.path.abspath(os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice")))


class Skip(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n=17):
    """A base port such that base..base+n-1 are all free: an agent's bootstrap port and its slot
    ports. Taken below the kernel's ephemeral range, so client sockets cannot grab one meanwhile."""
    lo = 20000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            hi = int(f.read().split()[0]) - n
    except OSError:
        hi = 32000
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randrange(lo, hi)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no block of %d free ports" % n)


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("agent exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("port %d not listening after %.0fs" % (port, timeout))


class Agent:
    """One sluice agent with its own data folder and port."""

    def __init__(self, workdir=None, env=None, args=()):
        self.workdir = workdir or tempfile.mkdtemp(prefix="sluice-test-")
        self.port = free_port_block()
        self.env = dict(os.environ)
        self.env.update({
            "SLUICE_KAFKA_PORT": str(self.port),
            "SLUICE_KAFKA_HOST": "127.0.0.1",
            "SLUICE_ADVERTISE_HOSTNAME_STRATEGY": "local",
            "SLUICE_HTTP_PORT": str(free_port()),  # /metrics: not the default 8080, which agents would share
            "SLUICE_BUCKET_URL": "file://" + os.path.join(self.workdir, "objects"),
            "SLUICE_METADATA_URL": "sqlite://" + os.path.join(self.workdir, "metadata.db"),
        })
        self.env.update(env or {})
        self.args = list(args)
        self.bin = AGENT_BIN  # a test may run another build (e.g. the optimised one, to measure memory)
        self.proc = None
        self.log_path = os.path.join(self.workdir, "agent.log")

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.log = open(self.log_path, "ab")
        # Its own process group: kill9() takes the supervisor and every worker down at once.
        self.proc = subprocess.Popen([self.bin, "agent"] + self.args, env=self.env, cwd=self.workdir,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, proc=self.proc)
        return self

    def wait_log(self, text, timeout=10):
        deadline = time.time() + timeout
        while text not in self.log_text():
            if time.time() > deadline:
                raise AssertionError("agent log never said %r" % text)
            time.sleep(0.02)

    def kill9(self):
        """SIGKILL to the whole agent (supervisor and workers): nothing gets to clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.time() + 5
        while time.time() < deadline:  # workers are gone once the group is empty
            try:
                os.killpg(self.proc.pid, 0)
                time.sleep(0.02)
            except ProcessLookupError:
                break

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("agent did not exit within %ds of SIGTERM" % timeout)
        return self.proc.returncode if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def sanitizer_report(self):
        """The first AddressSanitizer/UBSan/LeakSanitizer report in the agent's log, or None."""
        text = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def cleanup(self):
        """Stops the agent (it must exit 0 on SIGTERM) and fails the test on any sanitizer report."""
        try:
            rc = self.stop()
            report = self.sanitizer_report()
            if report:
                raise AssertionError("sanitizer report in the agent log:\n" + report)
            if rc not in (0, None):
                raise AssertionError("agent exited %s after SIGTERM; log tail:\n%s" % (rc, self.log_text()[-2000:]))
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.remove_steering_pins()

    @property
    def steering_name(self):
        ns = os.stat("/proc/self/ns/net").st_ino  # the agent runs in the test's network namespace
        return self.env.get("SLUICE_STEERING_NAME", "agent-%d-%d" % (ns, self.port))

    def remove_steering_pins(self):
        """The pinned BPF maps and link outlive the agent (by design); tests remove theirs."""
        if os.path.exists("/sys/fs/bpf/sluice/" + self.steering_name):
            run([AGENT_BIN, "steer", "remove", "--name", self.steering_name], check=False)


def run(cmd, input=None, timeout=120, check=True):
    """Runs a command; returns stdout bytes. Raises with stderr on failure."""
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return p.stdout


def kcat(agent, *args, input=None, timeout=120):
    return run(["kcat", "-b", agent.bootstrap, "-X", "broker.address.family=v4"] + list(args), input=input,
               timeout=timeout)


def consume_all(bootstrap, topic, partitions, want, timeout=120, record=lambda m: m.value()):
    """Reads partitions 0..partitions-1 of topic from offset 0 until want distinct offsets arrived
    (or timeout). Returns ({(partition, offset): record(message)}, duplicates); a consume error
    fails the test."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen, dup = {}, 0
    deadline = time.time() + timeout
    while len(seen) < want and time.time() < deadline:
        for m in c.consume(10000, timeout=0.5):
            expect(m.error() is None, "consume error %r" % m.error())
            key = (m.partition(), m.offset())
            dup += key in seen
            seen[key] = record(m)
    c.close()
    return seen, dup


def expect(cond, what):
    if not cond:
        raise AssertionError(what)
