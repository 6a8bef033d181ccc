"""Metrics and health: a real Prometheus (Debian's) scrapes the agent's /metrics while `sluice bench
produce` loads it, and what Prometheus stored agrees with what the benchmark produced (records
exactly); promtool accepts the exposition; counters survive a worker restart; /v1/status is 200 when
every worker serves and 503 while the agent drains after SIGTERM; bad HTTP requests get an error or
a close and both HTTP and Kafka keep serving."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from harness import AGENT_BIN, Agent, expect, free_port, kcat

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def http_get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(), dict(r.getheaders())
    finally:
        c.close()


def wait_status(port, want, timeout=15):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = http_get(port, "/v1/status")
            if last[0] == want:
                return json.loads(last[1])
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("/v1/status never answered %d; last: %r" % (want, last))


def scrape(port):
    """{(name, frozenset(labels)): value} of one /metrics exposition, plus its text."""
    status, text, headers = http_get(port, "/metrics")
    expect(status == 200, "/metrics answered %d" % status)
    expect(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), headers)
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        expect(m, "unparsable exposition line %r" % line)
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, text


def total(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


class Prometheus:
    """Debian's Prometheus on a private port, scraping one target every second, with its config and
    storage in a temp folder that stop() removes."""

    def __init__(self, target):
        for tool in (PROMETHEUS, PROMTOOL):
            expect(os.access(tool, os.X_OK), "%s is missing (Debian package prometheus; make deps)" % tool)
        self.dir = tempfile.mkdtemp(prefix="sluice-prom-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: sluice\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg,
                                      "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            expect(self.proc.poll() is None, "prometheus exited: %s" % self.log_tail())
            expect(time.time() < deadline, "prometheus not ready after 30 s: %s" % self.log_tail())
            time.sleep(0.2)

    def log_tail(self):
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode(errors="replace")[-1500:]

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        expect(body.get("status") == "success", "query %r: %r" % (expr, body))
        return body["data"]["result"]

    def wait_value(self, expr, want, timeout=20):
        """Waits until the query's single value equals want; returns it."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            res = self.query(expr)
            last = [float(r["value"][1]) for r in res]
            if last == [float(want)]:
                return
            time.sleep(0.3)
        raise AssertionError("prometheus: %s = %r, want %r" % (expr, last, want))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_produce(agent, *args):
    p = subprocess.run([AGENT_BIN, "bench", "produce", "--bootstrap-host", "127.0.0.1", "--bootstrap-port",
                        str(agent.port), "--json"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    expect(p.returncode == 0, "sluice bench produce exited %d: %s" % (p.returncode, p.stderr.decode()[-2000:]))
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def promtool_check(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    expect(p.returncode == 0, "promtool check metrics exited %d: %s %s" % (p.returncode, p.stdout.decode()[-2000:],
                                                                         p.stderr.decode()[-2000:]))


def test_prometheus_counts_what_bench_produced():
    hp = free_port()
    a = Agent(env={"SLUICE_HTTP_PORT": str(hp), "SLUICE_WORKERS": "2"})
    prom = None
    try:
        a.start()
        st = wait_status(hp, 200)
        expect(st == {"status": "ready", "workers": 2, "workers_serving": 2, "draining": False}, st)
        prom = Prometheus("127.0.0.1:%d" % hp)
        prom.wait_value('up{job="sluice"}', 1)

        r = bench_produce(a, "--topic", "m", "--partitions", "3", "--records", "5000", "--record-size", "200",
                          "--acks", "all", "--clients", "2")
        expect(r["records"] == 5000 and r["errors"] == 0, r)

        # What Prometheus scraped: every record exactly once; the batch bytes the agent committed hold
        # the benchmark's payload plus the record and batch headers.
        prom.wait_value("sum(sluice_produce_records_total)", 5000)
        committed = float(prom.query("sum(sluice_produce_bytes_total)")[0]["value"][1])
        expect(r["bytes"] < committed < r["bytes"] * 1.2, "committed %d batch bytes for %d payload bytes"
               % (committed, r["bytes"]))
        prom.wait_value('up{job="sluice"}', 1)

        samples, text = scrape(hp)
        promtool_check(text)
        expect(total(samples, "sluice_produce_records_total") == 5000, "records in /metrics")
        produces = total(samples, "sluice_requests_total", api="Produce")
        expect(produces >= 1 and produces == total(samples, "sluice_requests_total", api="Produce", error="NONE"),
               "produce requests %r, all without error" % produces)
        # Every answered produce is in the latency histogram; its request bytes hold the batches.
        expect(total(samples, "sluice_produce_latency_seconds_count") == produces, "produce latency count")
        expect(total(samples, "sluice_request_bytes_total", api="Produce") > committed, "produce request bytes")
        expect(total(samples, "sluice_response_bytes_total", api="Metadata") > 0, "metadata response bytes")
        expect(total(samples, "sluice_flushes_total") == total(samples, "sluice_flush_size_bytes_count") >= 1,
               "flushes vs flush size histogram")
        expect(total(samples, "sluice_object_put_seconds_count") >= total(samples, "sluice_flushes_total"),
               "object PUTs")
        expect(total(samples, "sluice_metadata_commit_seconds_count") == total(samples, "sluice_flushes_total"),
               "metadata commits")
        expect(total(samples, "sluice_worker_up") == 2 and total(samples, "sluice_draining") == 0, "up/draining")
        # Steering (when this kernel allows BPF): sk_lookup handed the benchmark's connections over.
        if "steering: sk_lookup program attached" in a.log_text():
            expect(total(samples, "sluice_steer_connections_total") >= 2, "steered connections")
            expect(total(samples, "sluice_steer_decisions_total", decision="bootstrap_pick") >= 1, "bootstrap picks")

        # A refused request is counted with its error code: deleting a topic that does not exist.
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        fut = admin.delete_topics(["no-such-topic"])["no-such-topic"]
        try:
            fut.result(10)
            raise AssertionError("deleting a missing topic succeeded")
        except Exception as e:
            expect("UNKNOWN_TOPIC" in str(e), "delete_topics: %r" % e)
        samples, _ = scrape(hp)
        expect(total(samples, "sluice_requests_total", api="DeleteTopics", error="UNKNOWN_TOPIC_OR_PARTITION") == 1,
               "DeleteTopics error not counted: %r" % [(k, v) for k, v in samples.items()
                                                       if ("api", "DeleteTopics") in k[1]])

        # A worker killed and restarted keeps adding to its own block: counters stay monotonic.
        pids = re.findall(r"worker (\d) \(pid (\d+)\) serving", a.log_text())
        victim = int(dict(pids)["0"])
        os.kill(victim, signal.SIGKILL)
        a.wait_log("worker 0 (pid %d) killed by signal 9" % victim)
        wait_status(hp, 200)
        samples, _ = scrape(hp)
        expect(total(samples, "sluice_worker_starts_total", worker="0") == 2, "worker 0 started twice")
        kcat(a, "-P", "-t", "m", "-p", "1", "-X", "linger.ms=0", input=b"".join(b"r%d\n" % i for i in range(100)))
        prom.wait_value("sum(sluice_produce_records_total)", 5100)
        prom.wait_value("sum(resets(sluice_produce_records_total[1m]))", 0)
    finally:
        if prom:
            prom.stop()
        a.cleanup()


def test_status_503_while_draining():
    # A produce is in flight when SIGTERM comes: its flush waits on an object store that answers
    # PUTs after 2 s, so the drain lasts long enough to be seen from outside.
    import s3server
    s3 = s3server.S3Server()
    hp = free_port()
    a = Agent(env={"SLUICE_WORKERS": "1", "SLUICE_HTTP_PORT": str(hp), **s3.agent_env("drain")})
    try:
        a.start()
        wait_status(hp, 200)
        kcat(a, "-P", "-t", "drain", "-p", "0", input=b"warm\n")
        s3.delay(2000, method="PUT")
        from confluent_kafka import Producer
        acked = []
        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 0})
        p.produce("drain", b"in flight", on_delivery=lambda err, msg: acked.append(err))
        deadline = time.time() + 10  # until its flush is waiting on the slow PUT
        while not s3.stats().get("delayed") and time.time() < deadline:
            p.poll(0.05)
        expect(s3.stats().get("delayed") and not acked, "no flush waiting on the slow PUT (acked: %r)" % acked)
        a.proc.send_signal(signal.SIGTERM)
        st = wait_status(hp, 503, timeout=1.5)
        expect(st["draining"] is True and st["status"] == "draining", st)
        samples, _ = scrape(hp)
        expect(total(samples, "sluice_draining") == 1, "sluice_draining gauge")
        rc = a.stop()
        p.flush(5)
        expect(rc == 0, "exit status %r" % rc)
        expect(acked == [None], "in-flight produce at SIGTERM: %r" % acked)
        try:
            http_get(hp, "/v1/status", timeout=1)
            raise AssertionError("HTTP still served after the agent exited")
        except OSError:
            pass
    finally:
        a.cleanup()
        s3.cleanup()


def raw(port, data, timeout=10):
    """Sends data on a fresh connection; returns all it gets back until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_bad_http_requests_get_errors_and_the_agent_keeps_serving():
    hp = free_port()
    a = Agent(env={"SLUICE_HTTP_PORT": str(hp)})
    try:
        a.start()
        wait_status(hp, 200)
        status_line = lambda resp: resp.split(b"\r\n", 1)[0]
        expect(status_line(raw(hp, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")) == b"HTTP/1.1 404 Not Found", "404")
        r = raw(hp, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        expect(status_line(r) == b"HTTP/1.1 405 Method Not Allowed" and b"Allow: GET\r\n" in r, r[:200])
        expect(status_line(raw(hp, b"DELETE /v1/status HTTP/1.1\r\n\r\n")) == b"HTTP/1.1 405 Method Not Allowed",
               "DELETE")
        expect(status_line(raw(hp, b"garbage\r\n\r\n")) == b"HTTP/1.1 400 Bad Request", "400")
        r = raw(hp, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
        expect(status_line(r) == b"HTTP/1.1 431 Request Header Fields Too Large", r[:200])
        r = raw(hp, b"GET /v1/status?verbose=1 HTTP/1.0\r\n\r\n")
        expect(status_line(r) == b"HTTP/1.1 200 OK" and b"Connection: close" in r and r.endswith(b"}\n"), r)

        # Slow clients: more idle connections than the server keeps (the oldest are dropped for
        # newer ones), and one that sends a byte every 0.5 s and never finishes its request.
        # Meanwhile status and Kafka answer at once; the slow one is closed by its deadline (5 s).
        idle = [socket.create_connection(("127.0.0.1", hp)) for _ in range(20)]
        slow = socket.create_connection(("127.0.0.1", hp), timeout=10)
        t0 = time.time()
        slow.sendall(b"GET /metr")
        st = wait_status(hp, 200, timeout=3)
        took = time.time() - t0
        expect(st["status"] == "ready" and took < 1.5, "status took %.1f s beside slow clients" % took)
        kcat(a, "-P", "-t", "after", input=b"still serving\n")
        expect(kcat(a, "-C", "-t", "after", "-o", "beginning", "-e").strip() == b"still serving", "kafka")
        closed_at = None
        while time.time() - t0 < 10 and closed_at is None:
            try:
                slow.sendall(b"i")
                slow.settimeout(0.5)
                if slow.recv(100) == b"":
                    closed_at = time.time() - t0
            except socket.timeout:
                pass
            except OSError:
                closed_at = time.time() - t0
        expect(closed_at is not None and 3 < closed_at < 8, "slow client closed after %r s" % closed_at)
        for s in idle + [slow]:
            s.close()
        expect(a.alive() and wait_status(hp, 200)["status"] == "ready", "status after the slow clients")
    finally:
        a.cleanup()


def test_http_port_0_disables_and_bad_port_is_refused():
    a = Agent(env={"SLUICE_HTTP_PORT": "0"})
    try:
        a.start()
        expect("/metrics and /v1/status at" not in a.log_text(), "HTTP served with port 0")
    finally:
        a.cleanup()
    p = subprocess.run([AGENT_BIN, "agent", "--http-port", "70000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    expect(p.returncode == 2 and "invalid value '70000' for --http-port" in p.stderr.decode(), p.stderr)


def test_store_errors_are_counted():
    # S3 refuses one PUT, then (after a restart: a cold read cache) one GET, with an error the agent
    # does not retry. The client's retries succeed; the metrics count each failure once, under the
    # answer's error code, and no record of the failed flush.
    import s3server
    s3 = s3server.S3Server()
    hp = free_port()
    # No lifecycle round during the test: its bucket listing is a GET too, and must not take the
    # injected failure meant for the fetch's read.
    env = {"SLUICE_WORKERS": "1", "SLUICE_HTTP_PORT": str(hp), "SLUICE_RETENTION_CHECK_INTERVAL": "1h",
           **s3.agent_env("errs")}
    a = Agent(env=env)
    try:
        a.start()
        kcat(a, "-P", "-t", "e", "-p", "0", input=b"first\n")
        s3.fail_next(1, status=403, code="AccessDenied", method="PUT")
        kcat(a, "-P", "-t", "e", "-p", "0", input=b"second\n")
        samples, _ = scrape(hp)
        expect(total(samples, "sluice_object_put_errors_total") == 1, "PUT errors")
        expect(total(samples, "sluice_requests_total", api="Produce", error="KAFKA_STORAGE_ERROR") == 1,
               "produce answered KAFKA_STORAGE_ERROR")
        expect(total(samples, "sluice_produce_records_total") == 2, "records: the failed flush counts none")
        expect(total(samples, "sluice_object_put_seconds_count") == 3, "PUTs: the start-up probe is not a worker's")

        a.stop()
        a.remove_steering_pins()
        a = Agent(workdir=a.workdir, env=env).start()
        wait_status(hp, 200)
        s3.fail_next(1, status=403, code="AccessDenied", method="GET")
        got = kcat(a, "-C", "-t", "e", "-p", "0", "-o", "beginning", "-e", "-X", "fetch.error.backoff.ms=50")
        expect(got.split() == [b"first", b"second"], "consumed %r" % got)
        samples, _ = scrape(hp)
        expect(total(samples, "sluice_object_get_errors_total") == 1, "GET errors: %r" % total(samples, "sluice_object_get_errors_total"))
        expect(total(samples, "sluice_object_get_seconds_count") >= 2, "GETs")
        expect(total(samples, "sluice_requests_total", api="Fetch", error="KAFKA_STORAGE_ERROR") >= 1,
               "fetch answered KAFKA_STORAGE_ERROR")
        expect(total(samples, "sluice_read_cache_misses_total") >= 1, "read cache misses")
        expect(total(samples, "sluice_fetch_latency_seconds_count") == total(samples, "sluice_requests_total",
                                                                               api="Fetch"), "fetch latency count")
    finally:
        a.cleanup()
        s3.cleanup()
