"""Kafka ACLs: CreateAcls / DescribeAcls / DeleteAcls with hand-crafted requests (Debian's
python3-confluent-kafka 1.7 has no ACL admin calls), the filters (LITERAL, PREFIXED, ANY, MATCH)
and per-entry validation; then the authorizer with real clients: the ANONYMOUS principal allowed
ok-* (PREFIXED) and not `secret`, enforced for produce, fetch and metadata by an agent whose ACLs
were created through another agent on the same PostgreSQL; DENY beats ALLOW; a super user may do
everything; consumer groups need READ on the group; denials counted in /metrics."""
import re
import shutil
import struct
import subprocess
import tempfile
import time

import harness
import kwire
from harness import Agent, expect, kcat
from test_metrics import scrape

# Kafka codes
TOPIC, GROUP, CLUSTER = 2, 3, 4
ANY, MATCH, LITERAL, PREFIXED = 1, 2, 3, 4
OP_ANY, OP_ALL, READ, WRITE, CREATE, DESCRIBE = 1, 2, 3, 4, 5, 8
DENY, ALLOW = 2, 3
ANON = "User:ANONYMOUS"
TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, INVALID_REQUEST = 29, 30, 42
REFRESH_S = 3.0  # documented: other workers and agents apply a change within about a second

_corr = [100]


def call(agent, api_key, version, body):
    _corr[0] += 1
    s = kwire.connect(agent.port)
    try:
        make = kwire.request_flex if version >= 2 else kwire.request
        s.sendall(make(api_key, version, _corr[0], body))
        frame = kwire.read_frame(s)
    finally:
        s.close()
    expect(frame is not None, "no answer to API %d v%d" % (api_key, version))
    expect(struct.unpack_from(">i", frame, 0)[0] == _corr[0], "wrong correlation id")
    return frame


class Reader:
    """Reads a response body (after the correlation id), non-flexible or flexible."""

    def __init__(self, frame, flexible):
        self.b, self.flex = frame, flexible
        self.pos = 4 + (1 if flexible else 0)

    def fmt(self, f):
        v = struct.unpack_from(">" + f, self.b, self.pos)
        self.pos += struct.calcsize(">" + f)
        return v[0]

    def uvarint(self):
        v, self.pos = kwire._read_uvarint(self.b, self.pos)
        return v

    def count(self):
        return self.uvarint() - 1 if self.flex else self.fmt("i")

    def string(self):
        n = self.uvarint() - 1 if self.flex else self.fmt("h")
        if n < 0:
            return None
        s = self.b[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def tags(self):
        if self.flex:
            expect(self.uvarint() == 0, "unexpected tagged fields")


def w_string(s, flex):
    if not flex:
        return kwire.string(s)
    return b"\x00" if s is None else kwire.varint_u(len(s.encode()) + 1) + s.encode()


def w_count(n, flex):
    return kwire.varint_u(n + 1) if flex else struct.pack(">i", n)


def filter_body(f, v):
    rt, name, pat, principal, host, op, perm = f
    flex = v >= 2
    out = struct.pack(">b", rt) + w_string(name, flex)
    if v >= 1:
        out += struct.pack(">b", pat)
    return out + w_string(principal, flex) + w_string(host, flex) + struct.pack(">bb", op, perm)


def create_acls(agent, acls, v=1):
    """acls: [(rt, name, pattern, principal, host, op, perm)] -> [(error, message)]."""
    flex = v >= 2
    body = w_count(len(acls), flex)
    for a in acls:
        body += filter_body(a, v) + (b"\x00" if flex else b"")
    body += b"\x00" if flex else b""
    r = Reader(call(agent, 30, v, body), flex)
    r.fmt("i")
    out = []
    for _ in range(r.count()):
        out.append((r.fmt("h"), r.string()))
        r.tags()
    return out


def describe_acls(agent, f, v=1):
    """-> (error, message, {(rt, name, pattern, principal, host, op, perm)})."""
    flex = v >= 2
    r = Reader(call(agent, 29, v, filter_body(f, v) + (b"\x00" if flex else b"")), flex)
    r.fmt("i")
    err, msg = r.fmt("h"), r.string()
    acls = set()
    for _ in range(r.count()):
        rt, name = r.fmt("b"), r.string()
        pat = r.fmt("b") if v >= 1 else LITERAL
        for _ in range(r.count()):
            principal, host, op, perm = r.string(), r.string(), r.fmt("b"), r.fmt("b")
            r.tags()
            acls.add((rt, name, pat, principal, host, op, perm))
        r.tags()
    return err, msg, acls


def delete_acls(agent, filters, v=1):
    """-> [(error, {(rt, name, pattern, principal, host, op, perm)})] per filter."""
    flex = v >= 2
    body = w_count(len(filters), flex)
    for f in filters:
        body += filter_body(f, v) + (b"\x00" if flex else b"")
    body += b"\x00" if flex else b""
    r = Reader(call(agent, 31, v, body), flex)
    r.fmt("i")
    out = []
    for _ in range(r.count()):
        err, _msg = r.fmt("h"), r.string()
        matched = set()
        for _ in range(r.count()):
            r.fmt("h")
            r.string()
            rt, name = r.fmt("b"), r.string()
            pat = r.fmt("b") if v >= 1 else LITERAL
            principal, host, op, perm = r.string(), r.string(), r.fmt("b"), r.fmt("b")
            r.tags()
            matched.add((rt, name, pat, principal, host, op, perm))
        r.tags()
        out.append((err, matched))
    return out


def produce_error(agent, topic):
    s = kwire.connect(agent.port)
    try:
        s.sendall(kwire.request(0, 3, 7, kwire.produce_v3_body(topic, 0, kwire.record_batch([b"x"]))))
        _corr, parts = kwire.parse_produce_v3_response(kwire.read_frame(s))
    finally:
        s.close()
    return parts[0][2]


def fetch_error(agent, topic):
    s = kwire.connect(agent.port)
    try:
        s.sendall(kwire.request(1, 4, 8, kwire.fetch_v4_body(topic, 0, 0, max_wait_ms=10)))
        return kwire.parse_fetch_v4_response(kwire.read_frame(s))[1]
    finally:
        s.close()


def list_offsets_error(agent, topic):
    s = kwire.connect(agent.port)
    try:
        s.sendall(kwire.request(2, 1, 9, kwire.list_offsets_v1_body(topic, 0, -1)))
        return kwire.parse_list_offsets_v1_response(kwire.read_frame(s))[0]
    finally:
        s.close()


def kcat_run(agent, *args, input=None):
    """(returncode, stdout + stderr) of a kcat that may fail."""
    return subprocess.run(["kcat", "-b", agent.bootstrap, "-X", "broker.address.family=v4"] + list(args),
                          input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def wait_for(cond, timeout, what):
    start = time.time()
    while time.time() - start < timeout:
        if cond():
            return time.time() - start
        time.sleep(0.05)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def test_acl_apis_create_describe_delete_with_filters():
    a = Agent(env={"SLUICE_WORKERS": "1"}).start()
    try:
        acls = [(TOPIC, "ok-", PREFIXED, ANON, "*", WRITE, ALLOW),
                (TOPIC, "ok-1", LITERAL, ANON, "*", READ, ALLOW),
                (TOPIC, "*", LITERAL, "User:bob", "10.0.0.1", OP_ALL, DENY),
                (GROUP, "g", LITERAL, "User:*", "*", READ, ALLOW),
                (CLUSTER, "kafka-cluster", LITERAL, ANON, "*", CREATE, ALLOW)]
        bad = [(TOPIC, "t", MATCH, ANON, "*", READ, ALLOW),        # MATCH is a filter, not a pattern
               (TOPIC, "t", LITERAL, "alice", "*", READ, ALLOW),   # principal without a type
               (TOPIC, "t", LITERAL, ANON, "*", OP_ANY, ALLOW),    # ANY is not an operation
               (CLUSTER, "other", LITERAL, ANON, "*", CREATE, ALLOW),
               (ANY, "t", LITERAL, ANON, "*", READ, ALLOW)]
        res = create_acls(a, acls[:2] + bad[:1] + acls[2:] + bad[1:])
        codes = [e for e, _ in res]
        expect(codes == [0, 0, INVALID_REQUEST, 0, 0, 0] + [INVALID_REQUEST] * 4, "per-ACL results %r" % res)
        expect(all(m for e, m in res if e), "invalid ACLs carry a message: %r" % res)
        expect(create_acls(a, acls[:1]) == [(0, None)], "creating an existing ACL again is not an error")

        everything = (ANY, None, ANY, None, None, OP_ANY, ANY)
        err, _, got = describe_acls(a, everything)
        expect(err == 0 and got == set(acls), "describe all: %r" % (got,))
        _, _, got = describe_acls(a, (TOPIC, "ok-1", MATCH, None, None, OP_ANY, ANY))
        expect(got == {acls[0], acls[1], acls[2]}, "MATCH ok-1 (prefix, literal and wildcard): %r" % (got,))
        _, _, got = describe_acls(a, (TOPIC, None, PREFIXED, None, None, OP_ANY, ANY))
        expect(got == {acls[0]}, "PREFIXED: %r" % (got,))
        _, _, got = describe_acls(a, (ANY, None, LITERAL, ANON, None, OP_ANY, ANY))
        expect(got == {acls[1], acls[4]}, "LITERAL for ANONYMOUS: %r" % (got,))
        _, _, got = describe_acls(a, (ANY, "ok-", ANY, None, None, OP_ANY, ANY))
        expect(got == {acls[0]}, "ANY with a name (exact): %r" % (got,))
        _, _, got = describe_acls(a, (ANY, None, ANY, None, None, OP_ANY, DENY))
        expect(got == {acls[2]}, "DENY only: %r" % (got,))
        for v in (0, 2, 3):  # v0 (literal only) and the flexible versions
            err, _, got = describe_acls(a, (TOPIC, None, LITERAL, None, None, OP_ANY, ANY), v=v)
            expect(err == 0 and got == {acls[1], acls[2]}, "describe v%d: %r" % (v, got))
        err, msg, _ = describe_acls(a, (0, None, ANY, None, None, OP_ANY, ANY))
        expect(err == INVALID_REQUEST and msg, "UNKNOWN resource type filter: %r" % err)

        res = delete_acls(a, [(TOPIC, "ok-1", MATCH, None, None, WRITE, ANY),
                              (ANY, None, ANY, "User:*", None, OP_ANY, ANY),
                              (ANY, None, 9, None, None, OP_ANY, ANY)], v=3)
        expect(res[0] == (0, {acls[0]}), "delete MATCH WRITE: %r" % (res[0],))
        expect(res[1] == (0, {acls[3]}), "delete User:*: %r" % (res[1],))
        expect(res[2][0] == INVALID_REQUEST, "bad filter: %r" % (res[2],))
        _, _, got = describe_acls(a, everything)
        expect(got == {acls[1], acls[2], acls[4]}, "after delete: %r" % (got,))
        # The agent is restarted: ACLs are in the metadata store.
        a.stop()
        a.start()
        _, _, got = describe_acls(a, everything)
        expect(got == {acls[1], acls[2], acls[4]}, "after restart: %r" % (got,))
        a.stop()
        expect(not a.sanitizer_report(), a.sanitizer_report())
    finally:
        a.cleanup()


def test_acls_enforced_for_produce_fetch_metadata_and_groups():
    import pgserver
    try:
        pg = pgserver.PgServer()
    except harness.Skip as e:
        raise AssertionError("this test needs PostgreSQL: %s" % e)
    workdir = tempfile.mkdtemp(prefix="sluice-acl-")
    shared = {"SLUICE_METADATA_URL": pg.url, "SLUICE_BUCKET_URL": "file://" + workdir + "/objects",
              "SLUICE_WORKERS": "2", "SLUICE_AUTHORIZER_ENABLED": "true"}
    admin = client = None
    try:
        # The admin agent treats ANONYMOUS as a super user; the client agent enforces the ACLs.
        # Separate agent groups: each advertises only its own slots, so clients stay on their agent.
        admin = Agent(env=dict(shared, SLUICE_SUPER_USERS="User:other;" + ANON, SLUICE_AGENT_GROUP="admin")).start()
        client = Agent(env=dict(shared, SLUICE_AGENT_GROUP="clients")).start()
        for t in ("ok-1", "secret", "ok-denied"):
            kcat(admin, "-P", "-t", t, input=b"first\n")
        # No ACL yet: everything denied on the client agent.
        expect(produce_error(client, "ok-1") == TOPIC_AUTHORIZATION_FAILED, "no ACL: produce allowed")
        expect(create_acls(client, [(TOPIC, "x", LITERAL, ANON, "*", READ, ALLOW)])[0][0] == 31,
               "CreateAcls without ALTER on the cluster")

        res = create_acls(admin, [(TOPIC, "ok-", PREFIXED, ANON, "*", WRITE, ALLOW),
                                  (TOPIC, "ok-", PREFIXED, ANON, "*", READ, ALLOW),
                                  (TOPIC, "ok-denied", LITERAL, "User:*", "*", READ, DENY),
                                  (GROUP, "readers", LITERAL, ANON, "*", READ, ALLOW)])
        expect([e for e, _ in res] == [0, 0, 0, 0], res)
        took = wait_for(lambda: produce_error(client, "ok-1") == 0, REFRESH_S, "the ACLs on the other agent")
        print("    ACLs created through one agent enforced by another after %.2f s" % took)
        time.sleep(1.5)  # every worker of the client agent has refreshed by now

        # Produce
        expect(produce_error(client, "secret") == TOPIC_AUTHORIZATION_FAILED, "produce to secret")
        p = kcat_run(client, "-P", "-t", "secret", input=b"nope\n")
        out = (p.stdout + p.stderr).decode()
        expect("authorization failed" in out.lower(), "kcat produce to secret: %r" % out)
        kcat(client, "-P", "-t", "ok-1", input=b"second\n")
        # Fetch
        expect(fetch_error(client, "secret") == TOPIC_AUTHORIZATION_FAILED, "fetch from secret")
        expect(fetch_error(client, "ok-1") == 0, "fetch from ok-1")
        expect(list_offsets_error(client, "secret") == TOPIC_AUTHORIZATION_FAILED, "ListOffsets of secret")
        expect(list_offsets_error(client, "ok-1") == 0, "ListOffsets of ok-1")
        expect(describe_acls(client, (ANY, None, ANY, None, None, OP_ANY, ANY))[0] == 31,
               "DescribeAcls without DESCRIBE on the cluster")
        got = kcat(client, "-C", "-t", "ok-1", "-o", "beginning", "-e", "-q").split()
        expect(got == [b"first", b"x", b"second"], "consumed from ok-1: %r" % got)
        # DENY beats ALLOW (READ on ok-* allowed, READ on ok-denied denied; WRITE still allowed)
        expect(fetch_error(client, "ok-denied") == TOPIC_AUTHORIZATION_FAILED, "DENY READ on ok-denied")
        expect(produce_error(client, "ok-denied") == 0, "WRITE on ok-denied")
        # Metadata: all topics leave secret out; asked by name it is an error.
        listing = kcat(client, "-L").decode()
        expect('topic "ok-1"' in listing and '"secret"' not in listing, "all-topics metadata: %s" % listing)
        named = kcat(client, "-L", "-t", "secret").decode()
        expect("authorization failed" in named.lower(), "metadata for secret: %s" % named)
        # Admin APIs: creating, deleting and describing the configs of topics not allowed.
        from confluent_kafka import KafkaError, Producer
        from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
        ac = AdminClient({"bootstrap.servers": client.bootstrap})
        for fut in ac.create_topics([NewTopic("secret2", 1, 1)]).values():
            e = fut.exception(30)
            expect(e and e.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, "CreateTopics: %r" % e)
        for fut in ac.delete_topics(["secret"]).values():
            e = fut.exception(30)
            expect(e and e.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, "DeleteTopics: %r" % e)
        for fut in ac.describe_configs([ConfigResource("topic", "secret")]).values():
            e = fut.exception(30)
            expect(e is not None, "DescribeConfigs of secret answered")
        # An idempotent producer needs WRITE on some topic (it has ok-*).
        delivered = []
        p = Producer({"bootstrap.servers": client.bootstrap, "enable.idempotence": True})
        p.produce("ok-1", b"idem", on_delivery=lambda err, m: delivered.append(err))
        expect(p.flush(30) == 0 and delivered == [None], "idempotent produce to ok-1: %r" % delivered)
        # The super user may do everything.
        expect(produce_error(admin, "secret") == 0 and fetch_error(admin, "secret") == 0, "super user denied")

        # Consumer groups: READ on group "readers" (and READ on the topic), not on "others".
        for group, want in (("readers", GROUP_AUTHORIZATION_FAILED * 0), ("others", GROUP_AUTHORIZATION_FAILED)):
            p = kcat_run(client, "-G", group, "-o", "beginning", "-e", "-q", "ok-1")
            out = (p.stdout + p.stderr).decode()
            if want:
                expect("group authorization failed" in out.lower(), "group %s: %r" % (group, out))
            else:
                expect("first" in out and "authorization" not in out.lower(), "group %s: %r" % (group, out))

        # Deleting the DENY lets ok-denied be read again, on the other agent too.
        res = delete_acls(admin, [(TOPIC, "ok-denied", LITERAL, None, None, OP_ANY, DENY)])
        expect(res[0][0] == 0 and len(res[0][1]) == 1, res)
        wait_for(lambda: fetch_error(client, "ok-denied") == 0, REFRESH_S, "the deletion on the other agent")

        samples = scrape(int(client.env["SLUICE_HTTP_PORT"]))[0]
        denied = {}
        for (name, labels), v in samples.items():
            if name == "sluice_authorization_denied_total":
                d = dict(labels)
                key = (d["operation"], d["resource_type"])
                denied[key] = denied.get(key, 0) + v
        expect(denied.get(("WRITE", "TOPIC"), 0) >= 2 and denied.get(("READ", "TOPIC"), 0) >= 2
               and denied.get(("DESCRIBE", "GROUP"), 0) >= 1 and denied.get(("ALTER", "CLUSTER"), 0) >= 1,
               "denials in /metrics: %r" % denied)
        for ag in (admin, client):
            ag.stop()
            expect(not ag.sanitizer_report(), ag.sanitizer_report())
    finally:
        for ag in (admin, client):
            if ag:
                ag.cleanup()
        pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def test_kafkajs_acl_admin():
    """kafkajs' createAcls / describeAcls (MATCH) / deleteAcls against the agent."""
    import json
    import os
    node = os.path.join(harness.ROOT, "tests", "js", "node_modules", ".bin", "node")
    a = Agent(env={"SLUICE_WORKERS": "1"}).start()
    try:
        p = subprocess.run([node, os.path.join(harness.ROOT, "tests", "js", "kafkajs_acl.js"), a.bootstrap],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        expect(p.returncode == 0, "kafkajs: %s" % p.stderr.decode()[-2000:])
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        expect(out["bad"] == "INVALID_REQUEST", "invalid principal: %r" % out["bad"])
        expect(out["match"] == [["js-", PREFIXED, 1], ["js-secret", LITERAL, 1]], "MATCH js-secret: %r" % out["match"])
        expect(out["deleted"] == [["js-secret"]], "deleted: %r" % out["deleted"])
        expect(out["after"] == [["js-", PREFIXED, 1]], "after: %r" % out["after"])
    finally:
        a.cleanup()


def test_authorizer_off_allows_everything():
    """Today's behaviour: with the authorizer off, ACLs are stored but nothing is refused."""
    a = Agent(env={"SLUICE_WORKERS": "1"}).start()
    try:
        expect(create_acls(a, [(TOPIC, "*", LITERAL, "User:*", "*", OP_ALL, DENY)]) == [(0, None)], "create")
        kcat(a, "-P", "-t", "t1", input=b"a\n")
        expect(kcat(a, "-C", "-t", "t1", "-o", "beginning", "-e", "-q").split() == [b"a"], "consume")
        expect(re.search(r'topic "t1"', kcat(a, "-L").decode()), "metadata")
    finally:
        a.cleanup()
