"""SASL: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 with users made by `sluice user`, through kcat,
confluent-kafka and kafkajs; refusals; the require-sasl gate; bounded and garbage input; the store
holding no password; credentials shared through PostgreSQL; session expiry (KIP-368)."""
import json
import os
import sqlite3
import struct
import subprocess
import time

import kwire
import pgserver
from harness import AGENT_BIN, ROOT, Agent, Skip, expect, kcat

JS_DIR = os.path.join(ROOT, "tests", "js")
NODE = os.path.join(JS_DIR, "node_modules", ".bin", "node")
MECHS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
REQUIRE = {"SLUICE_REQUIRE_SASL_AUTHENTICATION": "true"}


def user_cmd(agent, *args, check=True):
    p = subprocess.run([AGENT_BIN, "user"] + list(args), env=agent.env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("sluice user %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


def sasl_args(mech, user, password, ca=None):
    """librdkafka settings for SASL_PLAINTEXT, or SASL_SSL trusting the CA file ca."""
    tls = ["-X", "ssl.ca.location=" + ca] if ca else []
    return ["-X", "security.protocol=" + ("sasl_ssl" if ca else "sasl_plaintext"), "-X", "sasl.mechanisms=" + mech,
            "-X", "sasl.username=" + user, "-X", "sasl.password=" + password] + tls


def kcat_round_trip(agent, mech, user, password, topic, ca=None):
    lines = [("%s-%d" % (topic, i)).encode() for i in range(50)]
    kcat(agent, *sasl_args(mech, user, password, ca), "-P", "-t", topic, "-p", "0", input=b"\n".join(lines) + b"\n")
    out = kcat(agent, *sasl_args(mech, user, password, ca), "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
               "-q")
    expect(out.split(b"\n")[:-1] == lines, "%s: consumed %r" % (mech, out[:200]))


def py_conf(agent, mech, user, password, ca=None):
    conf = {"bootstrap.servers": agent.bootstrap, "security.protocol": "sasl_ssl" if ca else "sasl_plaintext",
            "sasl.mechanisms": mech, "sasl.username": user, "sasl.password": password, "broker.address.family": "v4"}
    if ca:
        conf["ssl.ca.location"] = ca
    return conf


def py_round_trip(agent, mech, user, password, topic, ca=None):
    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer(py_conf(agent, mech, user, password, ca))
    errors = []
    for i in range(20):
        p.produce(topic, ("v%d" % i).encode(), partition=0, on_delivery=lambda e, m: errors.append(e) if e else None)
    expect(p.flush(30) == 0 and not errors, "%s: produce errors %r" % (mech, errors))
    c = Consumer(dict(py_conf(agent, mech, user, password, ca), **{"group.id": "g-" + topic,
                                                               "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.time() + 30
    while len(got) < 20 and time.time() < deadline:
        for m in c.consume(100, timeout=0.5):
            expect(m.error() is None, "consume error %r" % m.error())
            got.append(m.value())
    c.close()
    expect(got == [("v%d" % i).encode() for i in range(20)], "%s: consumed %r" % (mech, got))


def add_users(agent, password="s3cret-Pa55"):
    for mech in MECHS:
        user_cmd(agent, "add", "u-" + mech.lower(), "--mechanism", mech, "--password", password)


# ---- raw wire helpers (SaslHandshake v1, SaslAuthenticate v0) ----

def handshake(sock, mech, corr=1):
    body = kwire.string(mech)
    sock.sendall(kwire.request(17, 1, corr, body))
    f = kwire.read_frame(sock)
    expect(f is not None, "SaslHandshake: connection closed")
    (err,) = struct.unpack(">h", f[4:6])
    return err


def authenticate(sock, token, corr=2, version=0):
    sock.sendall(kwire.request(36, version, corr, struct.pack(">i", len(token)) + token))
    f = kwire.read_frame(sock)
    if f is None:
        return None
    pos = 4
    (err,) = struct.unpack(">h", f[pos:pos + 2])
    pos += 2
    (mlen,) = struct.unpack(">h", f[pos:pos + 2])
    pos += 2
    msg = f[pos:pos + mlen].decode() if mlen >= 0 else None
    pos += max(mlen, 0)
    (blen,) = struct.unpack(">i", f[pos:pos + 4])
    pos += 4 + blen
    lifetime = struct.unpack(">q", f[pos:pos + 8])[0] if version >= 1 else None
    return err, msg, lifetime


def metadata_ok(sock, corr=9):
    sock.sendall(kwire.request(3, 1, corr, kwire.metadata_v1_body([])))
    return kwire.read_frame(sock) is not None


# ---- tests ----

def test_kcat_and_python_with_every_mechanism():
    a = Agent(env=REQUIRE)
    try:
        add_users(a)
        a.start()
        for mech in MECHS:
            kcat_round_trip(a, mech, "u-" + mech.lower(), "s3cret-Pa55", "kcat-" + mech.lower())
            py_round_trip(a, mech, "u-" + mech.lower(), "s3cret-Pa55", "py-" + mech.lower())
        expect("authenticated User:u-scram-sha-512" in a.log_text(), a.log_text()[-2000:])
        # The store holds derived keys only: the password appears nowhere in the database file.
        a.stop()
        with open(os.path.join(a.workdir, "metadata.db"), "rb") as f:
            expect(b"s3cret-Pa55" not in f.read(), "the password is in the SQLite file")
        rows = sqlite3.connect(os.path.join(a.workdir, "metadata.db")).execute(
            "SELECT username, mechanism, iterations FROM sasl_credentials ORDER BY 1").fetchall()
        expect(len(rows) == 3 and all(r[2] >= 4096 for r in rows), rows)
    finally:
        a.cleanup()


def test_sasl_ssl_with_every_mechanism():
    """SASL over TLS (SASL_SSL): the three mechanisms through kcat and confluent-kafka on a TLS
    listener that requires SASL; SASL_PLAINTEXT to the same port is refused."""
    from test_tls import Certs
    certs = Certs()
    ca = certs.p("ca.pem")
    a = Agent(env=dict(REQUIRE, SLUICE_TLS_ENABLED="true", SLUICE_TLS_SERVER_CERT_FILE=certs.p("server.pem"),
                       SLUICE_TLS_SERVER_PRIVATE_KEY_FILE=certs.p("server.key")))
    try:
        add_users(a)
        a.start()
        for mech in MECHS:
            user = "u-" + mech.lower()
            kcat_round_trip(a, mech, user, "s3cret-Pa55", "ssl-kcat-" + mech.lower(), ca=ca)
            py_round_trip(a, mech, user, "s3cret-Pa55", "ssl-py-" + mech.lower(), ca=ca)
        expect("authenticated User:u-plain" in a.log_text(), a.log_text()[-2000:])
        p = subprocess.run(["kcat", "-b", a.bootstrap, "-X", "broker.address.family=v4",
                            *sasl_args("PLAIN", "u-plain", "s3cret-Pa55"), "-L", "-m", "3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        expect(p.returncode != 0 and b"broker" not in p.stdout, "SASL_PLAINTEXT to a TLS port got metadata")
        a.wait_log("plaintext Kafka request on a TLS listener")
        kcat_round_trip(a, "SCRAM-SHA-256", "u-scram-sha-256", "s3cret-Pa55", "ssl-after", ca=ca)
    finally:
        a.cleanup()


def test_kafkajs_scram():
    a = Agent(env=REQUIRE)
    try:
        add_users(a)
        a.start()
        script = r"""
const { Kafka, logLevel } = require('kafkajs');
(async () => {
  const [broker, mech, user, pw, topic] = process.argv.slice(1);
  const kafka = new Kafka({ brokers: [broker], logLevel: logLevel.NOTHING,
    sasl: { mechanism: mech, username: user, password: pw } });
  const p = kafka.producer(); await p.connect();
  await p.send({ topic, messages: [{ value: 'js-1' }, { value: 'js-2' }] }); await p.disconnect();
  const admin = kafka.admin(); await admin.connect();
  const offs = await admin.fetchTopicOffsets(topic); await admin.disconnect();
  console.log(JSON.stringify(offs));
})().catch(e => { console.log(JSON.stringify({ error: e.type || e.name, message: e.message })); process.exit(1); });
"""
        for mech, js in (("SCRAM-SHA-256", "scram-sha-256"), ("SCRAM-SHA-512", "scram-sha-512")):
            p = subprocess.run([NODE, "-e", script, a.bootstrap, js, "u-" + mech.lower(), "s3cret-Pa55", "js-" + js],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, cwd=JS_DIR)
            out = p.stdout.decode()
            expect(p.returncode == 0, "%s: %s %s" % (mech, out, p.stderr.decode()[-1000:]))
            offs = json.loads(out.strip().splitlines()[-1])
            expect(offs[0]["high"] == "2", "%s: %r" % (mech, offs))
        p = subprocess.run([NODE, "-e", script, a.bootstrap, "scram-sha-256", "u-scram-sha-256", "wrong", "js-x"],
                           stdout=subprocess.PIPE, timeout=60, cwd=JS_DIR)
        expect(p.returncode != 0 and b"KafkaJSSASLAuthenticationError" in p.stdout and b"invalid credentials" in p.stdout,
               p.stdout)
    finally:
        a.cleanup()


def test_wrong_password_refused_and_good_client_served():
    a = Agent(env=REQUIRE)
    try:
        add_users(a)
        a.start()
        from confluent_kafka import KafkaError, Producer
        for mech in MECHS:
            errors = []
            p = Producer(dict(py_conf(a, mech, "u-" + mech.lower(), "not-it"), error_cb=errors.append))
            deadline = time.time() + 10
            while not errors and time.time() < deadline:
                p.poll(0.2)
            expect(errors and errors[0].code() == KafkaError._AUTHENTICATION and
                   "Authentication failed" in errors[0].str(), "%s: %r" % (mech, errors))
        # Raw: the error code and message, then the connection is closed on the next request.
        s = kwire.connect(a.port)
        expect(handshake(s, "PLAIN") == 0, "PLAIN handshake refused")
        err, msg, _ = authenticate(s, b"\0u-plain\0nope")
        expect(err == 58 and "Invalid username or password" in msg, (err, msg))
        expect(not metadata_ok(s) or kwire.closed_by_peer(s), "connection still served after a failed login")
        expect("SASL authentication failed" in a.log_text(), a.log_text()[-2000:])
        kcat_round_trip(a, "PLAIN", "u-plain", "s3cret-Pa55", "after-wrong")
        # Unknown user, unsupported mechanism (the answer lists the enabled ones).
        s = kwire.connect(a.port)
        expect(handshake(s, "PLAIN") == 0, "PLAIN handshake refused")
        expect(authenticate(s, b"\0nobody\0x")[0] == 58, "unknown user accepted")
        s = kwire.connect(a.port)
        s.sendall(kwire.request(17, 1, 1, kwire.string("GSSAPI")))
        f = kwire.read_frame(s)
        expect(struct.unpack(">h", f[4:6])[0] == 33 and b"SCRAM-SHA-256" in f and b"PLAIN" in f, f)
    finally:
        a.cleanup()


def test_unauthenticated_request_closes_connection():
    a = Agent(env=REQUIRE).start()
    try:
        s = kwire.connect(a.port)
        s.sendall(kwire.request(3, 1, 7, kwire.metadata_v1_body([])))
        expect(kwire.read_frame(s) is None, "Metadata answered before authentication")
        a.wait_log("Metadata before SASL authentication")
        # ApiVersions is allowed and advertises both SASL APIs.
        s = kwire.connect(a.port)
        s.sendall(kwire.request(18, 0, 1, b""))
        f = kwire.read_frame(s)
        (n,) = struct.unpack(">i", f[6:10])
        keys = {struct.unpack(">hhh", f[10 + 6 * i:16 + 6 * i])[0]: struct.unpack(">hhh", f[10 + 6 * i:16 + 6 * i])[2]
                for i in range(n)}
        expect(keys.get(17) == 1 and keys.get(36) == 2, keys)
    finally:
        a.cleanup()


def test_huge_and_garbage_sasl_input():
    a = Agent(env=REQUIRE)
    try:
        add_users(a)
        a.start()
        s = kwire.connect(a.port)
        expect(handshake(s, "SCRAM-SHA-256") == 0, "handshake refused")
        s.sendall(kwire.request(36, 0, 2, struct.pack(">i", 100000) + b"n" * 100000))
        expect(kwire.read_frame(s) is None, "a 100 KB SASL token was answered")
        a.wait_log("exceeds 65536")
        garbage = [b"", b"x", b"n,,", b"n,,n=", b"n,,n=u-scram-sha-256", b"n,,n=a=ZZ,r=abc", b"p=tls,,n=u,r=x",
                   b"n,,n=u-scram-sha-256,r=", b"\0\0\0", b"n,,n=u,r=a\0b", b"y" * 5000]
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            for g in garbage:
                s = kwire.connect(a.port)
                expect(handshake(s, mech) == 0, "handshake refused")
                r = authenticate(s, g)
                expect(r is not None and r[0] == 58, "%s %r: %r" % (mech, g, r))
        # A good client-first, then a garbage client-final.
        for final in (b"c=biws", b"c=biws,r=zzz,p=AAAA", b"garbage", b"c=biws,r=" + b"q" * 900):
            s = kwire.connect(a.port)
            expect(handshake(s, "SCRAM-SHA-256") == 0, "handshake refused")
            err, _, _ = authenticate(s, b"n,,n=u-scram-sha-256,r=clientnonce123")
            expect(err == 0, "client-first refused")
            r = authenticate(s, final, corr=3)
            expect(r is not None and r[0] == 58, "%r: %r" % (final, r))
        # Authenticate without a handshake; PLAIN garbage.
        s = kwire.connect(a.port)
        expect(authenticate(s, b"\0a\0b")[0] == 34, "SaslAuthenticate without handshake")
        for g in (b"", b"\0", b"abc", b"\0\0", b"a\0b"):
            s = kwire.connect(a.port)
            expect(handshake(s, "PLAIN") == 0, "handshake refused")
            expect(authenticate(s, g)[0] == 58, "PLAIN %r" % g)
        expect(a.alive(), "agent died")
        kcat_round_trip(a, "SCRAM-SHA-256", "u-scram-sha-256", "s3cret-Pa55", "after-garbage")
    finally:
        a.cleanup()


def test_user_list_and_delete():
    a = Agent(env=REQUIRE)
    try:
        add_users(a)
        out = user_cmd(a, "list").stdout.decode()
        for mech in MECHS:
            expect("u-%s\t%s\titerations=8192" % (mech.lower(), mech) in out, out)
        a.start()
        kcat_round_trip(a, "SCRAM-SHA-512", "u-scram-sha-512", "s3cret-Pa55", "before-delete")
        user_cmd(a, "delete", "u-scram-sha-512")
        expect("u-scram-sha-512" not in user_cmd(a, "list").stdout.decode(), "deleted user still listed")
        p = subprocess.run(["kcat", "-b", a.bootstrap, "-X", "broker.address.family=v4", "-L", "-m", "5"]
                           + sasl_args("SCRAM-SHA-512", "u-scram-sha-512", "s3cret-Pa55"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        expect(p.returncode != 0 and b"Authentication failed" in p.stderr, p.stderr[-500:])
        expect(user_cmd(a, "delete", "u-scram-sha-512", check=False).returncode == 1, "second delete succeeded")
        bad = user_cmd(a, "add", "x", "--mechanism", "MD5", "--password", "p", check=False)
        expect(bad.returncode == 2 and b"unknown mechanism" in bad.stderr, bad.stderr)
        bad = user_cmd(a, "add", "x", "--mechanism", "PLAIN", "--password", "p", "--iterations", "10", check=False)
        expect(bad.returncode == 2, bad.stderr)
    finally:
        a.cleanup()


def test_session_lifetime_closes_unrenewed_connection():
    a = Agent(env=dict(REQUIRE, SLUICE_SASL_SESSION_LIFETIME="1500ms"))
    try:
        add_users(a)
        a.start()
        s = kwire.connect(a.port)
        expect(handshake(s, "PLAIN") == 0, "handshake refused")
        err, _, lifetime = authenticate(s, b"\0u-plain\0s3cret-Pa55", version=1)
        expect(err == 0 and lifetime == 1500, (err, lifetime))
        expect(metadata_ok(s), "Metadata refused after authentication")
        # Re-authentication on the same connection renews the session; another user is refused.
        time.sleep(1.0)
        expect(handshake(s, "PLAIN", corr=10) == 0, "re-handshake refused")
        err, _, _ = authenticate(s, b"\0u-plain\0s3cret-Pa55", corr=11, version=1)
        expect(err == 0, "re-authentication refused")
        time.sleep(1.0)
        expect(metadata_ok(s, corr=12), "renewed session closed")
        time.sleep(0.8)
        expect(not metadata_ok(s, corr=13), "expired session still served")
        a.wait_log("expired without re-authentication")
    finally:
        a.cleanup()


def test_credentials_shared_through_postgresql():
    try:
        pg = pgserver.PgServer()
    except Skip as e:  # this test must run on the real PostgreSQL
        raise AssertionError("PostgreSQL is required: %s" % e)
    a = b = None
    try:
        env = dict(REQUIRE, SLUICE_METADATA_URL=pg.url)
        a = Agent(env=env)
        add_users(a, password="pg-Pa55word")
        a.start()
        b = Agent(env=env).start()
        kcat_round_trip(a, "SCRAM-SHA-256", "u-scram-sha-256", "pg-Pa55word", "pg-a")
        kcat_round_trip(b, "PLAIN", "u-plain", "pg-Pa55word", "pg-b")
        rows = user_cmd(a, "list").stdout.decode()
        expect(rows.count("\n") == 3, rows)
        table = pg.psql("sluice", "SELECT * FROM sasl_credentials")
        expect("u-plain" in table and "pg-Pa55word" not in table, table)
        expect("pg-Pa55word".encode().hex() not in table, "the password's hex is in the table")
    finally:
        for x in (a, b):
            if x:
                x.cleanup()
        pg.stop()


# ---- DescribeUserScramCredentials (50) / AlterUserScramCredentials (51), raw (confluent-kafka 1.7 has neither) ----

def _cstr(s):
    return kwire.varint_u(len(s) + 1) + s


def _read_cstr(f, pos):
    n, pos = kwire._read_uvarint(f, pos)
    if n == 0:
        return None, pos
    return f[pos:pos + n - 1].decode(), pos + n - 1


def describe_scram(sock, users, corr=20):
    body = b"\x00" if users is None else kwire.varint_u(len(users) + 1) + b"".join(_cstr(u.encode()) + b"\x00"
                                                                                   for u in users)
    sock.sendall(kwire.request_flex(50, 0, corr, body + b"\x00"))
    f = kwire.read_frame(sock)
    pos = 4 + 1 + 4  # correlation id, tagged fields, throttle
    (err,) = struct.unpack_from(">h", f, pos)
    _, pos = _read_cstr(f, pos + 2)
    n, pos = kwire._read_uvarint(f, pos)
    results = {}
    for _ in range(n - 1):
        user, pos = _read_cstr(f, pos)
        (uerr,) = struct.unpack_from(">h", f, pos)
        _, pos = _read_cstr(f, pos + 2)
        m, pos = kwire._read_uvarint(f, pos)
        infos = []
        for _ in range(m - 1):
            infos.append(struct.unpack_from(">bi", f, pos))
            pos += 5 + 1
        pos += 1
        results[user] = (uerr, sorted(infos))
    return err, results


def alter_scram(sock, deletions=(), upsertions=(), corr=21):
    body = kwire.varint_u(len(deletions) + 1) + b"".join(_cstr(n.encode()) + struct.pack(">b", m) + b"\x00"
                                                         for n, m in deletions)
    body += kwire.varint_u(len(upsertions) + 1)
    for name, mech, iterations, salt, salted in upsertions:
        body += _cstr(name.encode()) + struct.pack(">bi", mech, iterations) + _cstr(salt) + _cstr(salted) + b"\x00"
    sock.sendall(kwire.request_flex(51, 0, corr, body + b"\x00"))
    f = kwire.read_frame(sock)
    pos = 4 + 1 + 4
    n, pos = kwire._read_uvarint(f, pos)
    out = {}
    for _ in range(n - 1):
        user, pos = _read_cstr(f, pos)
        (err,) = struct.unpack_from(">h", f, pos)
        msg, pos = _read_cstr(f, pos + 2)
        pos += 1
        out[user] = (err, msg)
    return out


def test_describe_and_alter_user_scram_credentials():
    import hashlib
    a = Agent()  # SASL optional: the admin connection is unauthenticated
    try:
        add_users(a)
        a.start()
        s = kwire.connect(a.port)
        salt = os.urandom(16)
        salted256 = hashlib.pbkdf2_hmac("sha256", b"bob-pw", salt, 4096)
        salted512 = hashlib.pbkdf2_hmac("sha512", b"bob-pw", salt, 8192)
        r = alter_scram(s, upsertions=[("bob", 1, 4096, salt, salted256), ("bob", 2, 8192, salt, salted512)])
        expect(r == {"bob": (0, None)}, r)
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            kcat_round_trip(a, mech, "bob", "bob-pw", "bob-" + mech.lower())
        err, res = describe_scram(s, ["bob", "nobody"])
        expect(err == 0 and res["bob"] == (0, [(1, 4096), (2, 8192)]) and res["nobody"][0] == 91, res)
        err, res = describe_scram(s, None)  # every SCRAM user; u-plain has none
        expect(sorted(res) == ["bob", "u-scram-sha-256", "u-scram-sha-512"], res)
        expect(res["u-scram-sha-512"] == (0, [(2, 8192)]), res)
        expect(describe_scram(s, ["bob", "bob"])[1]["bob"][0] == 92, "duplicate user")
        # Refusals: unknown mechanism, too few iterations, wrong digest length, deleting what is not there.
        r = alter_scram(s, upsertions=[("c1", 3, 4096, salt, salted256), ("c2", 1, 100, salt, salted256),
                                       ("c3", 1, 4096, salt, salted512)], deletions=[("c4", 1)])
        expect(r["c1"][0] == 33 and r["c2"][0] == 93 and r["c3"][0] == 93 and r["c4"][0] == 91, r)
        r = alter_scram(s, deletions=[("bob", 1)])
        expect(r == {"bob": (0, None)}, r)
        expect(describe_scram(s, ["bob"])[1]["bob"] == (0, [(2, 8192)]), "SCRAM-SHA-256 of bob not deleted")
        with open(os.path.join(a.workdir, "metadata.db"), "rb") as f:
            data = f.read()
        expect(salted512.hex().encode() not in data and salted512 not in data, "the salted password is stored")
    finally:
        a.cleanup()


def test_enabled_mechanisms_setting():
    bad = subprocess.run([AGENT_BIN, "agent"], env=dict(os.environ, SLUICE_SASL_MECHANISMS="PLAIN,MD5"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    expect(bad.returncode == 2 and b"unknown mechanism 'MD5'" in bad.stderr, bad.stderr)
    a = Agent(env=dict(REQUIRE, SLUICE_SASL_MECHANISMS="PLAIN"))
    try:
        add_users(a)
        a.start()
        s = kwire.connect(a.port)
        s.sendall(kwire.request(17, 1, 1, kwire.string("SCRAM-SHA-256")))
        f = kwire.read_frame(s)
        expect(struct.unpack(">h", f[4:6])[0] == 33 and b"PLAIN" in f and b"SCRAM" not in f, f)
        p = subprocess.run(["kcat", "-b", a.bootstrap, "-X", "broker.address.family=v4", "-L", "-m", "5"]
                           + sasl_args("SCRAM-SHA-256", "u-scram-sha-256", "s3cret-Pa55"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        expect(p.returncode != 0, "SCRAM accepted while only PLAIN is enabled")
        kcat_round_trip(a, "PLAIN", "u-plain", "s3cret-Pa55", "only-plain")
    finally:
        a.cleanup()


def test_sasl_principal_is_what_the_authorizer_sees():
    """With the ACL authorizer on, a SASL super user produces and consumes; another authenticated
    user without ACLs is refused with TOPIC_AUTHORIZATION_FAILED."""
    a = Agent(env=dict(REQUIRE, SLUICE_AUTHORIZER_ENABLED="true", SLUICE_SUPER_USERS="User:root"))
    try:
        user_cmd(a, "add", "root", "--mechanism", "SCRAM-SHA-256", "--password", "root-pw")
        user_cmd(a, "add", "mallory", "--mechanism", "SCRAM-SHA-256", "--password", "m-pw")
        a.start()
        kcat_round_trip(a, "SCRAM-SHA-256", "root", "root-pw", "acl-topic")
        from confluent_kafka import KafkaError, Producer
        p = Producer(py_conf(a, "SCRAM-SHA-256", "mallory", "m-pw"))
        errors = []
        p.produce("acl-topic", b"x", partition=0, on_delivery=lambda e, m: errors.append(e))
        p.flush(20)
        expect(errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
               "mallory's produce: %r" % errors)
    finally:
        a.cleanup()
