"""TLS and mTLS on the Kafka listeners: kcat and confluent-kafka over TLS, client certificates,
plaintext clients and broken handshakes refused without harm, certificates reloaded on SIGHUP.
Certificates are made in the test with python3-cryptography (Debian's package)."""
import datetime
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

from harness import AGENT_BIN, Agent, expect, free_port_block, kcat, run
import kwire

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import ipaddress


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, cert, key):
    with open(path + ".pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def _cert(cn, issuer_cert, issuer_key, serial, server=False, ca=False, expired=False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    start, end = (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) if expired else \
        (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30))
    b = (x509.CertificateBuilder().subject_name(_name(cn))
         .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
         .public_key(key.public_key()).serial_number(serial).not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    cert = b.sign(issuer_key or key, hashes.SHA256())
    return cert, key


class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost, a second one (for reloads), a client
    certificate from the CA, one from another CA and an expired one from the CA."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-tls-")
        ca, ca_key = _cert("sluice test CA", None, None, 1, ca=True)
        other, other_key = _cert("other CA", None, None, 2, ca=True)
        _write(self.p("ca"), ca, ca_key)
        _write(self.p("other-ca"), other, other_key)
        _write(self.p("server"), *_cert("sluice server one", ca, ca_key, 1001, server=True))
        _write(self.p("server2"), *_cert("sluice server two", ca, ca_key, 2002, server=True))
        _write(self.p("alice"), *_cert("alice", ca, ca_key, 3001))
        _write(self.p("bob"), *_cert("bob", ca, ca_key, 3004))
        _write(self.p("mallory"), *_cert("mallory", other, other_key, 3002))
        _write(self.p("expired"), *_cert("old", ca, ca_key, 3003, expired=True))

    def p(self, name):
        return os.path.join(self.dir, name)


def tls_agent(certs, mtls=False, env=None):
    e = {"SLUICE_TLS_ENABLED": "true", "SLUICE_TLS_SERVER_CERT_FILE": certs.p("server.pem"),
         "SLUICE_TLS_SERVER_PRIVATE_KEY_FILE": certs.p("server.key"), "SLUICE_LOG_LEVEL": "debug",
         "SLUICE_WORKERS": "2"}
    if mtls:
        e.update({"SLUICE_TLS_CLIENT_CA_FILE": certs.p("ca.pem"), "SLUICE_REQUIRE_MTLS_AUTHENTICATION": "true"})
    e.update(env or {})
    return Agent(env=e).start()


def ssl_args(certs, client=None):
    args = ["-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + certs.p("ca.pem")]
    if client:
        args += ["-X", "ssl.certificate.location=" + certs.p(client + ".pem"),
                 "-X", "ssl.key.location=" + certs.p(client + ".key")]
    return args


def kcat_round_trip(agent, certs, topic, client=None, n=200):
    lines = [b"%s-%04d" % (topic.encode(), i) for i in range(n)]
    kcat(agent, *ssl_args(certs, client), "-P", "-t", topic, "-p", "0", input=b"\n".join(lines) + b"\n",
         timeout=30)
    out = kcat(agent, *ssl_args(certs, client), "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
               timeout=30)
    got = out.split(b"\n")[:-1]
    expect(got == lines, "%s: consumed %d of %d lines over TLS, first %r" % (topic, len(got), n, got[:2]))


def kcat_fails(agent, certs, client=None):
    """kcat -L over TLS does not get metadata (librdkafka retries: bounded by a short timeout)."""
    p = subprocess.run(["kcat", "-b", agent.bootstrap, "-X", "broker.address.family=v4", *ssl_args(certs, client),
                        "-L", "-m", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode != 0 and b"broker" not in p.stdout


def tls_socket(agent, certs, client=None):
    ctx = ssl.create_default_context(cafile=certs.p("ca.pem"))
    if client:
        ctx.load_cert_chain(certs.p(client + ".pem"), certs.p(client + ".key"))
    raw = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def api_versions(sock, corr):
    sock.sendall(kwire.request(18, 0, corr, b""))
    frame = kwire.read_frame(sock)
    expect(frame is not None, "ApiVersions over TLS: connection closed")
    cid, err = struct.unpack(">ih", frame[:6])
    expect(cid == corr and err == 0, "ApiVersions over TLS: correlation %d error %d" % (cid, err))


def test_tls_kcat_and_confluent_kafka_produce_consume():
    certs = Certs()
    a = tls_agent(certs)
    try:
        kcat_round_trip(a, certs, "tls-kcat")
        from confluent_kafka import Consumer, Producer, TopicPartition
        conf = {"bootstrap.servers": a.bootstrap, "security.protocol": "ssl", "ssl.ca.location": certs.p("ca.pem"),
                "broker.address.family": "v4"}
        p = Producer(dict(conf, **{"linger.ms": 5}))
        # Records larger than a TLS record (16 KiB) and many small ones, through one connection.
        values = [os.urandom(40000) for _ in range(20)] + [b"small-%d" % i for i in range(2000)]
        for v in values:
            p.produce("tls-python", v, partition=0)
        expect(p.flush(30) == 0, "producer over TLS did not deliver everything")
        c = Consumer(dict(conf, **{"group.id": "tls-g", "enable.auto.commit": False}))
        c.assign([TopicPartition("tls-python", 0, 0)])
        got = []
        deadline = time.time() + 30
        while len(got) < len(values) and time.time() < deadline:
            for m in c.consume(1000, timeout=0.5):
                expect(m.error() is None, "consume error %r" % m.error())
                got.append(m.value())
        c.close()
        expect(got == values, "consumed %d of %d records over TLS, or not the same bytes" % (len(got), len(values)))
        # A fetch answer with several partitions: headers and record spans encrypted in order.
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient(conf)
        fs = admin.create_topics([NewTopic("tls-multi", num_partitions=4, replication_factor=1)])
        fs["tls-multi"].result(30)
        want = {}
        for i in range(4000):
            v = b"multi-%d-" % i + os.urandom(i % 300)
            p.produce("tls-multi", v, partition=i % 4)
            want.setdefault(i % 4, []).append(v)
        expect(p.flush(30) == 0, "producer over TLS did not deliver the 4-partition records")
        c = Consumer(dict(conf, **{"group.id": "tls-m", "enable.auto.commit": False, "fetch.wait.max.ms": 100}))
        c.assign([TopicPartition("tls-multi", q, 0) for q in range(4)])
        have = {}
        deadline = time.time() + 30
        while sum(len(v) for v in have.values()) < 4000 and time.time() < deadline:
            for m in c.consume(1000, timeout=0.5):
                expect(m.error() is None, "consume error %r" % m.error())
                have.setdefault(m.partition(), []).append(m.value())
        c.close()
        expect(have == want, "4 partitions over TLS: got %r records per partition" %
               {q: len(v) for q, v in have.items()})
        # Both TLS versions are served.
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = ssl.create_default_context(cafile=certs.p("ca.pem"))
            ctx.minimum_version = ctx.maximum_version = v
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", a.port)), server_hostname="127.0.0.1") as s:
                api_versions(s, 7)
                expect(s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v],
                       s.version())
    finally:
        a.cleanup()


def test_mtls_client_certificates():
    certs = Certs()
    a = tls_agent(certs, mtls=True)
    try:
        kcat_round_trip(a, certs, "mtls-alice", client="alice")
        a.wait_log("principal User:alice")
        expect(kcat_fails(a, certs), "mTLS: kcat without a client certificate got metadata")
        expect(kcat_fails(a, certs, client="mallory"), "mTLS: a certificate from another CA was accepted")
        expect(kcat_fails(a, certs, client="expired"), "mTLS: an expired certificate was accepted")
        log = a.log_text()
        expect("certificate has expired" in log, log[-3000:])
        expect("client certificate refused" in log or "peer did not return a certificate" in log, log[-3000:])
        kcat_round_trip(a, certs, "mtls-after", client="alice")
    finally:
        a.cleanup()


def test_mtls_principal_is_what_the_authorizer_sees():
    """The certificate's CN is the principal ACLs are checked against: alice (a super user) produces
    and consumes, bob (same CA, no ACL) is refused the topic, over the same TLS listener."""
    certs = Certs()
    a = tls_agent(certs, mtls=True, env={"SLUICE_AUTHORIZER_ENABLED": "true", "SLUICE_SUPER_USERS": "User:alice"})
    try:
        kcat_round_trip(a, certs, "acl-mtls", client="alice")
        p = subprocess.run(["kcat", "-b", a.bootstrap, "-X", "broker.address.family=v4", *ssl_args(certs, "bob"),
                            "-P", "-t", "acl-mtls", "-p", "0"], input=b"from bob\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        expect("authorization failed" in out.lower(), "bob's produce was not refused: rc %d %s" % (p.returncode, out[-800:]))
        got = kcat(a, *ssl_args(certs, "alice"), "-C", "-t", "acl-mtls", "-p", "0", "-o", "beginning", "-e", "-q",
                   timeout=30).split(b"\n")[:-1]
        expect(b"from bob" not in got and len(got) == 200, "after bob's attempt alice reads %d lines" % len(got))
    finally:
        a.cleanup()


def test_kafkajs_over_mtls():
    """Node's TLS stack (kafkajs): produce and consume in a group with a client certificate."""
    certs = Certs()
    a = tls_agent(certs, mtls=True)
    try:
        js = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "js")
        node = os.path.join(js, "node_modules", ".bin", "node")
        out = run([node, os.path.join(js, "kafkajs_tls.js"), a.bootstrap, "kjs-tls", "1000", certs.p("ca.pem"),
                   certs.p("alice.pem"), certs.p("alice.key")], timeout=120).decode()
        expect("ok 1000" in out, out)
        a.wait_log("principal User:alice")
    finally:
        a.cleanup()


def test_tls_refuses_to_start_on_bad_files():
    certs = Certs()
    base = dict(os.environ, SLUICE_TLS_ENABLED="true", SLUICE_KAFKA_HOST="127.0.0.1",
                SLUICE_KAFKA_PORT=str(free_port_block()), SLUICE_STEERING="off", SLUICE_HTTP_PORT="0",
                SLUICE_BUCKET_URL="file://" + certs.p("objects"),
                SLUICE_METADATA_URL="sqlite://" + certs.p("metadata.db"))
    cases = [
        ({"SLUICE_TLS_SERVER_CERT_FILE": certs.p("missing.pem"), "SLUICE_TLS_SERVER_PRIVATE_KEY_FILE": certs.p("server.key")},
         "cannot load tls-server-cert-file"),
        ({"SLUICE_TLS_SERVER_CERT_FILE": certs.p("server.pem"), "SLUICE_TLS_SERVER_PRIVATE_KEY_FILE": certs.p("alice.key")},
         "key values mismatch"),
        ({"SLUICE_TLS_SERVER_CERT_FILE": certs.p("server.pem"), "SLUICE_TLS_SERVER_PRIVATE_KEY_FILE": certs.p("server.key"),
          "SLUICE_TLS_CLIENT_CA_FILE": certs.p("nope.pem")}, "cannot load tls-client-ca-file"),
    ]
    for env, want in cases:
        p = subprocess.run([AGENT_BIN, "agent"], env=dict(base, **env), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30, cwd=certs.dir)
        out = p.stdout.decode(errors="replace")
        expect(p.returncode != 0, "agent started with %r: %s" % (env, out[-1000:]))
        errors = [l for l in out.splitlines() if " ERROR " in l]
        expect(len(errors) == 1 and want in errors[0] and "TLS:" in errors[0], out[-2000:])


def test_plaintext_client_on_tls_port_is_refused():
    certs = Certs()
    a = tls_agent(certs)
    try:
        s = kwire.connect(a.port)
        s.sendall(kwire.request(18, 0, 1, b""))
        expect(kwire.closed_by_peer(s), "a plaintext ApiVersions on the TLS port was not closed")
        s.close()
        p = subprocess.run(["kcat", "-b", a.bootstrap, "-X", "broker.address.family=v4", "-L", "-m", "3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        expect(p.returncode != 0, "plaintext kcat got metadata from a TLS port")
        a.wait_log("plaintext Kafka request on a TLS listener from 127.0.0.1:")
        kcat_round_trip(a, certs, "after-plaintext")
    finally:
        a.cleanup()


def test_sighup_reloads_certificate_keeping_connections():
    certs = Certs()
    a = tls_agent(certs)
    try:
        old = tls_socket(a, certs)
        api_versions(old, 1)

        def served_subject():
            out = run(["sh", "-c", "openssl s_client -connect 127.0.0.1:%d </dev/null 2>/dev/null | "
                       "openssl x509 -noout -serial -subject" % a.port], timeout=30).decode()
            return out

        before = served_subject()
        expect("sluice server one" in before and "serial=03E9" in before, before)
        for ext in ("pem", "key"):
            os.replace(certs.p("server2." + ext), certs.p("server." + ext))
        a.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while a.log_text().count("TLS certificate reloaded") < 2 and time.time() < deadline:
            time.sleep(0.05)
        expect(a.log_text().count("TLS certificate reloaded") == 2, a.log_text()[-2000:])
        after = served_subject()
        expect("sluice server two" in after and "serial=07D2" in after, after)
        api_versions(old, 2)  # the connection made before the reload still works
        old.close()
        # A broken file: one line, the agent keeps the certificate it has.
        with open(certs.p("server.pem"), "w") as f:
            f.write("not a certificate\n")
        a.proc.send_signal(signal.SIGHUP)
        a.wait_log("TLS reload failed, keeping the previous certificate")
        expect("sluice server two" in served_subject(), "a failed reload changed the certificate")
        expect(a.alive(), "agent died on a failed reload")
        kcat_round_trip(a, certs, "after-reload")
    finally:
        a.cleanup()


def client_hello():
    """The first flight of a real TLS client."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def test_handshake_fuzz_keeps_serving():
    certs = Certs()
    a = tls_agent(certs)
    try:
        rnd = random.Random(12)
        hello = client_hello()
        expect(len(hello) > 100 and hello[0] == 22, "no ClientHello made")
        # A ClientHello and then silence: closed once the 10 s handshake time is up.
        silent = kwire.connect(a.port)
        silent.sendall(hello)
        t0 = time.time()
        closed_at = []
        watcher = threading.Thread(target=lambda: kwire.closed_by_peer(silent, timeout=20)
                                   and closed_at.append(time.time() - t0))
        watcher.start()
        # Random bytes (as a TLS record and not: a record header promising more bytes than come
        # waits for the handshake timeout), truncated ClientHellos, a flood of garbage.
        socks = []
        for i in range(30):
            s = kwire.connect(a.port)
            first = bytes([22, 3, 1]) if i % 2 else b""
            s.sendall(first + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000))))
            socks.append(s)
        for cut in (5, 40, len(hello) // 2, len(hello) - 1):
            s = kwire.connect(a.port)
            s.sendall(hello[:cut])
            socks.append(s)
        flood = kwire.connect(a.port)
        try:
            for _ in range(64):
                flood.sendall(bytes([22, 3, 3, 0x40, 0]) + os.urandom(16384))
        except OSError:
            pass  # closed while sending: that is the point
        expect(kwire.closed_by_peer(flood, timeout=12), "garbage flood not closed")
        flood.close()
        api_versions_ok = tls_socket(a, certs)
        api_versions(api_versions_ok, 3)  # served while the broken handshakes are pending
        api_versions_ok.close()
        for i, s in enumerate(socks):
            expect(kwire.closed_by_peer(s, timeout=15), "broken handshake %d: not closed" % i)
            s.close()
        watcher.join()
        expect(closed_at and 9 <= closed_at[0] <= 13,
               "the silent handshake was closed after %s s, not about 10" % closed_at)
        silent.close()
        a.wait_log("TLS handshake not finished within 10 s")
        kcat_round_trip(a, certs, "after-fuzz")
        expect(a.alive(), "agent died")
    finally:
        a.cleanup()
