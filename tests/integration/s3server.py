"""A real S3-speaking server for tests: s3rver (npm, installed by `make deps` into tests/s3/) behind
tests/s3/serve.js, which verifies every request's AWS Signature V4 and can inject faults.

    s3 = S3Server()          # starts it on 127.0.0.1, a free port, a temp folder, bucket "sluice"
    agent_env = s3.agent_env(prefix="some/prefix")
    s3.stop(); s3.start()    # same folder and port: a fault test's outage
    s3.cleanup()             # stops it and removes the folder
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from harness import ROOT, Skip, free_port

S3_DIR = os.path.join(ROOT, "tests", "s3")
ACCESS_KEY = SECRET_KEY = "S3RVER"  # s3rver's built-in account


class S3Server:
    """netns: run the server inside that network namespace (/run/netns/NAME), listening on host."""

    def __init__(self, bucket="sluice", service_endpoint=None, host="127.0.0.1", netns=None):
        if not os.path.exists(os.path.join(S3_DIR, "node_modules", "s3rver")):
            raise Skip("s3rver is not installed (run make deps)")
        if not shutil.which("node"):
            raise Skip("node is not installed (run make deps)")
        self.bucket = bucket
        self.service_endpoint = service_endpoint
        self.host = host
        self.netns = netns
        self.workdir = tempfile.mkdtemp(prefix="sluice-s3-")
        self.datadir = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "s3.log")
        self.port = free_port()
        self.proc = None
        self.start()

    @property
    def endpoint(self):
        return "%s:%d" % (self.host, self.port)

    def url(self, prefix="", path_style=True, endpoint=None):
        """The SLUICE_BUCKET_URL for this server."""
        if not endpoint:  # the agent takes https for anything but loopback unless told
            endpoint = self.endpoint if self.host == "127.0.0.1" else "http://" + self.endpoint
        u = "s3://%s%s?endpoint=%s&region=us-east-1" % (self.bucket, "/" + prefix if prefix else "", endpoint)
        return u + ("&path_style=true" if path_style else "")

    def agent_env(self, prefix="", **kw):
        return {"SLUICE_BUCKET_URL": self.url(prefix, **kw), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def start(self, timeout=20):
        # The legacy provider: s3rver 3.7.1 makes its list continuation tokens with DES.
        prefix = ["nsenter", "--net=/run/netns/" + self.netns] if self.netns else []
        cmd = prefix + ["node", "--openssl-legacy-provider", os.path.join(S3_DIR, "serve.js"), "--address", self.host,
                        "--port", str(self.port),
               "--directory", self.datadir, "--bucket", self.bucket]
        if self.service_endpoint:
            cmd += ["--service-endpoint", self.service_endpoint]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("s3 server exited with %s; log:\n%s" % (self.proc.returncode, self.log_text()))
            try:
                self.stats()
                return self
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("s3 server not answering after %ds; log:\n%s" % (timeout, self.log_text()))
                time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _control(self, path, method="GET"):
        url = "http://%s/__sluice/%s" % (self.endpoint, path)
        if self.netns:  # the server is only reachable from inside its namespace
            code = ("import sys, urllib.request\n"
                    "r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], method=sys.argv[2]), timeout=5)\n"
                    "sys.stdout.buffer.write(r.read())\n")
            p = subprocess.run(["nsenter", "--net=/run/netns/" + self.netns, "/usr/bin/python3", "-c", code, url,
                                method], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            if p.returncode != 0:
                raise OSError("s3 control %s: %s" % (path, p.stderr.decode(errors="replace")[-300:]))
            body = p.stdout
        else:
            req = urllib.request.Request(url, method=method)
            with urllib.request.urlopen(req, timeout=5) as r:
                body = r.read()
        return json.loads(body) if body else None

    def stats(self):
        """{"requests": n, "methods": {"PUT": n, ...}, "signatureFailures": n, "injected": n}"""
        return self._control("stats")

    def fail_next(self, count, status=503, code="SlowDown", method=None):
        """The next `count` requests (of `method`, if given) get this error instead of an answer."""
        q = "status=%d&code=%s&count=%d" % (status, code, count) + ("&method=" + method if method else "")
        self._control("fail?" + q, method="POST")

    def delay(self, ms, method=None):
        """Every request (of `method`, if given) is answered `ms` later, until clear()."""
        self._control("delay?ms=%d" % ms + ("&method=" + method if method else ""), method="POST")

    def clear(self):
        """Drops the injected faults and delays."""
        self._control("clear", method="POST")

    def objects(self, prefix=""):
        """Keys stored in the bucket under prefix, read from s3rver's folder."""
        root = os.path.join(self.datadir, self.bucket)
        suffix = "._S3rver_object"
        keys = []
        for d, _, files in os.walk(root):
            for f in files:
                if f.endswith(suffix):
                    key = os.path.relpath(os.path.join(d, f[:-len(suffix)]), root)
                    if key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""
