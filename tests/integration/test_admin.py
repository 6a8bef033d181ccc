"""The admin surface clients rely on, through real clients: DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs, CreatePartitions and DescribeCluster with python3-confluent-kafka's
AdminClient (librdkafka), kafkajs and @platformatic/kafka (tests/js/admin.mjs); the agent enforcing
what was changed (max.message.bytes) and serving the new partitions on every worker; the same on
PostgreSQL with two agents; and every API/version ApiVersions advertises answering."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

import harness
import kwire
from harness import ROOT, Agent, consume_all, expect

NODE = os.path.join(ROOT, "tests", "js", "node_modules", ".bin", "node")
ADMIN_JS = os.path.join(ROOT, "tests", "js", "admin.mjs")
SLOTS = 16
DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG = 5, 1
# Another worker or agent applies a change with its next topic listing (every 2 s).
PROPAGATION_S = 3.0


def results(futures, timeout=30):
    """{key: None or the KafkaError} of an AdminClient call's futures."""
    out = {}
    for key, f in futures.items():
        try:
            f.result(timeout)
            out[key] = None
        except Exception as e:
            out[key] = e.args[0] if e.args else e
    return out


def code(err):
    return err.code() if err is not None else None


def describe_topic(admin, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(30)


def source(entry):
    return int(getattr(entry.source, "value", entry.source))


def js(step, bootstrap, topic):
    p = subprocess.run([NODE, ADMIN_JS, step, bootstrap, topic], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    expect(p.returncode == 0, "admin.mjs %s exited %d: %s" % (step, p.returncode, p.stderr.decode()[-2000:]))
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def metadata_partitions(port, topic):
    """Partitions of topic in a Metadata v1 answer from the worker behind port (-1 if not listed)."""
    return metadata(port, topic)[1]


def metadata(port, topic):
    """(the broker table, partitions of topic or -1) in a Metadata v1 answer from the worker behind port."""
    s = kwire.connect(port)
    try:
        s.sendall(kwire.request(3, 1, 7, kwire.metadata_v1_body([topic] if topic else [])))
        frame = kwire.read_frame(s)
    finally:
        s.close()
    pos = 4  # correlation id

    def i16():
        nonlocal pos
        pos += 2
        return struct.unpack_from(">h", frame, pos - 2)[0]

    def i32():
        nonlocal pos
        pos += 4
        return struct.unpack_from(">i", frame, pos - 4)[0]

    def string():
        n = i16()
        nonlocal pos
        pos += max(n, 0)
        return frame[pos - max(n, 0):pos].decode() if n >= 0 else None

    brokers = []
    for _ in range(i32()):  # brokers: node id, host, port, rack
        brokers.append((i32(), string(), i32()))
        string()
    i32()  # controller
    for _ in range(i32()):
        err, name = i16(), string()
        pos += 1  # is_internal
        nparts = i32()
        for _ in range(nparts):
            i16(), i32(), i32()
            for _ in range(i32()):
                i32()
            for _ in range(i32()):
                i32()
        if name == topic:
            return brokers, nparts if err == 0 else -1
    return brokers, -1


def wait_converged(agents, timeout=20):
    """Every worker of every agent advertises the same broker table (right after an agent joins,
    workers' membership views differ for a heartbeat or two, and clients that see a broker move
    drop its connection)."""
    deadline = time.time() + timeout
    while True:
        tables = {tuple(metadata(a.port + s, None)[0]) for a in agents for s in range(SLOTS + 1)}
        if len(tables) == 1:
            return
        expect(time.time() < deadline, "agents' broker tables never converged: %d views" % len(tables))
        time.sleep(0.2)


def wait_everywhere(agents, topic, partitions):
    """Every worker of every agent (each slot port reaches its owner) advertises the new count;
    returns how long that took."""
    t0 = time.time()
    while True:
        behind = [(a.port, s) for a in agents for s in range(SLOTS + 1)
                  if metadata_partitions(a.port + s, topic) != partitions]
        if not behind:
            return time.time() - t0
        expect(time.time() - t0 < PROPAGATION_S, "after %.1f s, ports %r still advertise another partition count"
               % (PROPAGATION_S, behind[:5]))
        time.sleep(0.1)


def delivery_error(bootstrap, topic, size):
    """Produces one message of size bytes; the delivery's error (None when it was stored)."""
    errs = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.max.bytes": 10_000_000, "retries": 0})
    p.produce(topic, value=b"x" * size, partition=0, on_delivery=lambda err, msg: errs.append(err))
    expect(p.flush(30) == 0, "message not delivered nor failed within 30 s")
    return errs[0]


def wait_enforced(bootstrap, topic, big, small):
    """Within the propagation time, a message of big bytes fails with MESSAGE_TOO_LARGE, and one of
    small bytes is still stored."""
    deadline = time.time() + PROPAGATION_S
    while True:
        err = delivery_error(bootstrap, topic, big)
        if code(err) == KafkaError.MSG_SIZE_TOO_LARGE:
            break
        expect(err is None, "a %d-byte message failed with %r" % (big, err))
        expect(time.time() < deadline, "a %d-byte message still accepted %.1f s after the change" % (big, PROPAGATION_S))
        time.sleep(0.2)
    err = delivery_error(bootstrap, topic, small)
    expect(err is None, "a %d-byte message failed with %r" % (small, err))


def agent():
    return Agent(env={"SLUICE_WORKERS": "2", "SLUICE_SLOTS": str(SLOTS)}).start()


def test_confluent_describe_alter_configs():
    a = agent()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        expect(results(admin.create_topics([NewTopic("cfg", 1, 1)]))["cfg"] is None, "create cfg")
        before = describe_topic(admin, "cfg")
        expect(len(before) >= 30, "DescribeConfigs lists %d configs: %r" % (len(before), sorted(before)))
        mmb = before["max.message.bytes"]
        expect(mmb.value == "1048588" and source(mmb) == DEFAULT_CONFIG and mmb.is_default and not mmb.is_read_only,
               "max.message.bytes before: %r source %r" % (mmb.value, mmb.source))
        expect(before["cleanup.policy"].value == "delete", "cleanup.policy %r" % before["cleanup.policy"].value)
        expect(delivery_error(a.bootstrap, "cfg", 5000) is None, "5000 bytes refused before any change")

        res = ConfigResource(ConfigResource.Type.TOPIC, "cfg", set_config={"max.message.bytes": "2000",
                                                                           "retention.ms": "3600000"})
        expect(results(admin.alter_configs([res]))[res] is None, "alter_configs")
        after = describe_topic(admin, "cfg")
        mmb = after["max.message.bytes"]
        expect(mmb.value == "2000" and source(mmb) == DYNAMIC_TOPIC_CONFIG and not mmb.is_default,
               "max.message.bytes after: %r source %r" % (mmb.value, mmb.source))
        expect(after["retention.ms"].value == "3600000", "retention.ms %r" % after["retention.ms"].value)
        wait_enforced(a.bootstrap, "cfg", 5000, 500)

        # validate_only changes nothing; bad keys, values and topics get their errors
        res = ConfigResource(ConfigResource.Type.TOPIC, "cfg", set_config={"max.message.bytes": "100"})
        expect(results(admin.alter_configs([res], validate_only=True))[res] is None, "validate_only")
        expect(describe_topic(admin, "cfg")["max.message.bytes"].value == "2000", "validate_only changed it")
        for bad, want in (({"no.such.config": "1"}, KafkaError.INVALID_CONFIG),
                          ({"max.message.bytes": "lots"}, KafkaError.INVALID_CONFIG),
                          ({"cleanup.policy": "sometimes"}, KafkaError.INVALID_CONFIG)):
            res = ConfigResource(ConfigResource.Type.TOPIC, "cfg", set_config=bad)
            err = results(admin.alter_configs([res]))[res]
            expect(code(err) == want, "%r: %r" % (bad, err))
        res = ConfigResource(ConfigResource.Type.TOPIC, "no-such-topic", set_config={"retention.ms": "1"})
        err = results(admin.alter_configs([res]))[res]
        expect(code(err) == KafkaError.UNKNOWN_TOPIC_OR_PART, "unknown topic: %r" % err)
        res = ConfigResource(ConfigResource.Type.TOPIC, "no-such-topic")
        err = results(admin.describe_configs([res]))[res]
        expect(code(err) == KafkaError.UNKNOWN_TOPIC_OR_PART, "describe unknown topic: %r" % err)

        # legacy AlterConfigs sets the whole set: what is not given goes back to its default
        res = ConfigResource(ConfigResource.Type.TOPIC, "cfg", set_config={"retention.ms": "1000"})
        expect(results(admin.alter_configs([res]))[res] is None, "second alter_configs")
        now = describe_topic(admin, "cfg")
        expect(now["max.message.bytes"].value == "1048588" and source(now["max.message.bytes"]) == DEFAULT_CONFIG,
               "max.message.bytes not reset: %r" % now["max.message.bytes"].value)

        # the broker resource: the agent's settings, read-only
        res = ConfigResource(ConfigResource.Type.BROKER, "0")
        broker = admin.describe_configs([res])[res].result(30)
        expect(broker["message.max.bytes"].value == "1048588" and broker["message.max.bytes"].is_read_only,
               "broker configs: %r" % {k: v.value for k, v in broker.items()})
    finally:
        a.cleanup()


def test_confluent_create_partitions_then_produce_to_all():
    a = agent()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        expect(results(admin.create_topics([NewTopic("grow", 3, 1)]))["grow"] is None, "create grow")
        expect(wait_everywhere([a], "grow", 3) >= 0, "3 partitions")
        err = results(admin.create_partitions([NewPartitions("grow", 6)]))["grow"]
        expect(err is None, "grow to 6: %r" % err)
        for count, want in ((6, KafkaError.INVALID_PARTITIONS), (4, KafkaError.INVALID_PARTITIONS)):
            err = results(admin.create_partitions([NewPartitions("grow", count)]))["grow"]
            expect(code(err) == want, "grow to %d again: %r" % (count, err))
        err = results(admin.create_partitions([NewPartitions("no-such-topic", 2)]))["no-such-topic"]
        expect(code(err) == KafkaError.UNKNOWN_TOPIC_OR_PART, "unknown topic: %r" % err)
        err = results(admin.create_partitions([NewPartitions("grow", 7, replica_assignment=[[99]])]))["grow"]
        expect(code(err) == KafkaError.INVALID_REPLICA_ASSIGNMENT, "bad assignment: %r" % err)
        err = results(admin.create_partitions([NewPartitions("grow", 8)], validate_only=True))["grow"]
        expect(err is None, "validate_only: %r" % err)
        took = wait_everywhere([a], "grow", 6)
        print("    6 partitions advertised by every worker %.2f s after CreatePartitions" % took)

        errs = []
        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all"})
        for part in range(6):
            p.produce("grow", value=b"p%d" % part, partition=part, on_delivery=lambda e, m: e and errs.append(e))
        expect(p.flush(30) == 0 and not errs, "produce to 6 partitions: %r" % errs)
        seen, _ = consume_all(a.bootstrap, "grow", 6, 6, timeout=30)
        expect(seen == {(part, 0): b"p%d" % part for part in range(6)}, "read back: %r" % seen)
    finally:
        a.cleanup()


def test_kafkajs_admin():
    a = agent()
    try:
        grown = js("kafkajs-grow", a.bootstrap, "jsgrow")
        expect(grown["shrink"] == "INVALID_PARTITIONS", "kafkajs createPartitions to 4: %r" % grown["shrink"])
        cluster = grown["cluster"]
        want = [{"nodeId": s, "host": "127.0.0.1", "port": a.port + 1 + s} for s in range(SLOTS)]
        expect(cluster["clusterId"] == "sluice" and cluster["controller"] == 0, "describeCluster: %r" % cluster)
        expect(sorted(cluster["brokers"], key=lambda b: b["nodeId"]) == want, "brokers: %r" % cluster["brokers"])
        wait_everywhere([a], "jsgrow", 6)
        offsets = js("kafkajs-produce", a.bootstrap, "jsgrow")["offsets"]
        expect(offsets == [[p, "0"] for p in range(6)], "kafkajs produce: %r" % offsets)
        seen, _ = consume_all(a.bootstrap, "jsgrow", 6, 6, timeout=30)
        expect(seen == {(p, 0): b"kafkajs-%d" % p for p in range(6)}, "read back: %r" % seen)

        cfg = js("kafkajs-configs", a.bootstrap, "jsgrow")
        b, after = cfg["before"]["max.message.bytes"], cfg["after"]["max.message.bytes"]
        expect(b == {"value": "1048588", "source": DEFAULT_CONFIG, "isDefault": True}, "before: %r" % b)
        expect(after == {"value": "2000", "source": DYNAMIC_TOPIC_CONFIG, "isDefault": False}, "after: %r" % after)
        expect(cfg["after"]["retention.ms"]["value"] == "3600000", "retention.ms: %r" % cfg["after"]["retention.ms"])
        expect(len(cfg["before"]) >= 30, "kafkajs sees %d configs" % len(cfg["before"]))
        expect(cfg["unknownKey"] == "INVALID_CONFIG", "unknown key: %r" % cfg["unknownKey"])
        wait_enforced(a.bootstrap, "jsgrow", 5000, 500)
    finally:
        a.cleanup()


def test_platformatic_incremental_alter_configs():
    a = agent()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        res = results(admin.create_topics([NewTopic("inc", 1, 1, config={"retention.ms": "5000"})]))
        expect(res["inc"] is None, "create inc")
        out = js("platformatic-configs", a.bootstrap, "inc")
        expect(out["appended"] == ["delete,compact"], "APPEND compact: %r" % out["appended"])
        c = out["configs"]
        expect(c["cleanup.policy"]["value"] == "compact" and c["cleanup.policy"]["source"] == DYNAMIC_TOPIC_CONFIG
               and c["cleanup.policy"]["type"] == 7, "SUBTRACT delete: %r" % c["cleanup.policy"])
        expect(c["max.message.bytes"] == {"value": "3000", "source": DYNAMIC_TOPIC_CONFIG, "type": 3,
                                          "readOnly": False, "synonyms": [["3000", 1], ["1048588", 5]]},
               "SET max.message.bytes: %r" % c["max.message.bytes"])
        expect(c["retention.ms"]["value"] == "604800000" and c["retention.ms"]["source"] == DEFAULT_CONFIG,
               "DELETE retention.ms: %r" % c["retention.ms"])
        expect('"errorCode":40' in (out["bad"] or ""), "APPEND to a non-list config: %r" % out["bad"])
        # what DescribeConfigs says through librdkafka too
        now = describe_topic(admin, "inc")
        expect(now["max.message.bytes"].value == "3000" and now["cleanup.policy"].value == "compact",
               "confluent describe: %r" % {k: v.value for k, v in now.items()})
        # compact: records need keys; max.message.bytes 3000
        errs = []
        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "retries": 0})
        deadline = time.time() + PROPAGATION_S
        while True:
            errs.clear()
            p.produce("inc", value=b"x" * 5000, key=b"k", partition=0, on_delivery=lambda e, m: errs.append(e))
            p.flush(30)
            if code(errs[0]) == KafkaError.MSG_SIZE_TOO_LARGE:
                break
            expect(time.time() < deadline, "5000 bytes still accepted: %r" % errs)
            time.sleep(0.2)
        errs.clear()
        p.produce("inc", value=b"y" * 100, key=b"k", partition=0, on_delivery=lambda e, m: errs.append(e))
        p.flush(30)
        expect(errs == [None], "100 bytes with a key: %r" % errs)
    finally:
        a.cleanup()


def test_postgres_two_agents_see_changes():
    """On PostgreSQL, a change made through agent A: agent B describes it at once, advertises the new
    partitions on every worker and enforces the new max.message.bytes within the listing period."""
    import pgserver
    try:
        pg = pgserver.PgServer()
    except harness.Skip as e:
        raise AssertionError("this test needs PostgreSQL: %s" % e)
    folder = tempfile.mkdtemp(prefix="sluice-admin-")
    env = {"SLUICE_WORKERS": "2", "SLUICE_SLOTS": str(SLOTS), "SLUICE_HEARTBEAT_TIMEOUT": "2s",
           "SLUICE_METADATA_URL": pg.url,
           "SLUICE_BUCKET_URL": "file://" + os.path.join(folder, "objects")}
    agents = []
    try:
        agents = [Agent(env=env).start(), Agent(env=env).start()]
        a, b = agents
        for x in agents:
            x.wait_log("all 2 workers serving")
        wait_converged(agents)
        admin_a = AdminClient({"bootstrap.servers": a.bootstrap})
        admin_b = AdminClient({"bootstrap.servers": b.bootstrap})
        expect(results(admin_a.create_topics([NewTopic("pg", 3, 1)]))["pg"] is None, "create pg")
        wait_everywhere(agents, "pg", 3)
        expect(results(admin_a.create_partitions([NewPartitions("pg", 6)]))["pg"] is None, "grow pg")
        took = wait_everywhere(agents, "pg", 6)
        print("    PostgreSQL: 6 partitions on every worker of both agents after %.2f s" % took)
        res = ConfigResource(ConfigResource.Type.TOPIC, "pg", set_config={"max.message.bytes": "2000"})
        expect(results(admin_a.alter_configs([res]))[res] is None, "alter through A")
        mmb = describe_topic(admin_b, "pg")["max.message.bytes"]
        expect(mmb.value == "2000" and source(mmb) == DYNAMIC_TOPIC_CONFIG, "B describes %r" % mmb.value)
        wait_enforced(b.bootstrap, "pg", 5000, 500)
        errs = []
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        for part in range(6):
            p.produce("pg", value=b"pg%d" % part, partition=part, on_delivery=lambda e, m: e and errs.append(e))
        expect(p.flush(30) == 0 and not errs, "produce through B: %r" % errs)
        # partition 0 also holds the messages wait_enforced sent (those accepted before B applied
        # the change, and the 500-byte one): pg0 comes last
        seen, _ = consume_all(a.bootstrap, "pg", 6, 6, timeout=30)
        last0 = max(o for (part, o) in seen if part == 0)
        expect(seen[(0, last0)] == b"pg0" and all(seen.get((part, 0)) == b"pg%d" % part for part in range(1, 6)),
               "read back: %r" % {k: v[:8] for k, v in seen.items()})
    except BaseException:
        for x in agents:
            print("    agent %d log tail:\n%s" % (x.port, x.log_text()[-3000:]))
        raise
    finally:
        for x in agents:
            x.cleanup()
        pg.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


# ---- ApiVersions advertises exactly what answers ----

def _schemas():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import gen_messages
    folder = os.path.join(ROOT, "userspace", "protocol", "schema")
    return {api.key: api for api in (gen_messages.parse_file(os.path.join(folder, f))
                                     for f in sorted(os.listdir(folder)) if f.endswith(".def"))}


def _uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _empty_body(st, ver, flex):
    """The smallest valid encoding of a struct at a version: zeros, empty strings and arrays (acks 1:
    acks 0 gets no answer)."""
    out = b""
    for f in st.fields:
        if not f.min_ver <= ver <= f.max_ver or (f.tag >= 0 and flex):
            continue
        t = f.dsl_type
        if f.is_array or t in ("string", "bytes", "records"):
            if t == "records":
                out += _uvarint(0) if flex else struct.pack(">i", -1)
            else:
                out += _uvarint(1) if flex else (struct.pack(">i", 0) if f.is_array or t == "bytes"
                                                 else struct.pack(">h", 0))
        elif t == "uuid":
            out += bytes(16)
        else:
            size = {"int8": 1, "bool": 1, "int16": 2, "uint16": 2, "int32": 4, "int64": 8, "float64": 8}[t]
            out += (1).to_bytes(size, "big") if f.name == "acks" else bytes(size)
    return out + (b"\0" if flex else b"")


def _ask(port, key, ver, flex, body, wait_close=False):
    header = struct.pack(">hhi", key, ver, 99) + kwire.string("sluice-test") + (b"\0" if flex else b"")
    s = kwire.connect(port)
    try:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        frame = kwire.read_frame(s, timeout=10)
        closed = frame is None or (wait_close and kwire.closed_by_peer(s, timeout=0.3))
        return frame, closed
    finally:
        s.close()


def test_api_versions_advertised_apis_all_answer():
    a = agent()
    try:
        frame, _ = _ask(a.port, 18, 0, False, b"")
        err, n = struct.unpack_from(">hi", frame, 4)
        advertised = {}
        for i in range(n):
            key, lo, hi = struct.unpack_from(">hhh", frame, 10 + 6 * i)
            advertised[key] = (lo, hi)
        for key in (32, 33, 37, 44, 60):
            expect(key in advertised, "API %d not advertised: %r" % (key, advertised))
        schemas = _schemas()
        answered = 0
        for key, (lo, hi) in sorted(advertised.items()):
            api = schemas[key]
            for ver in range(lo, hi + 1):
                flex = ver >= api.flex
                frame, closed = _ask(a.port + 1 + (key % SLOTS), key, ver, flex,
                                     _empty_body(api.request, ver, flex))
                expect(frame is not None and struct.unpack_from(">i", frame, 0)[0] == 99,
                       "API %d v%d advertised but not answered" % (key, ver))
                answered += 1
        # beyond the advertised range: the connection is closed (ApiVersions: KIP-511 answer)
        for key, (lo, hi) in sorted(advertised.items()):
            if key == 18:
                frame, _ = _ask(a.port, 18, hi + 1, True, b"\0\0")
                expect(struct.unpack_from(">h", frame, 4)[0] == 35, "ApiVersions v%d: not UNSUPPORTED_VERSION" % (hi + 1))
                continue
            frame, closed = _ask(a.port, key, hi + 1, False, b"")
            expect(frame is None and closed, "API %d v%d (not advertised) answered" % (key, hi + 1))
        frame, closed = _ask(a.port, 57, 0, False, b"")  # UpdateFeatures: not served
        expect(frame is None and closed, "API 57 answered")
        print("    %d advertised API versions answered" % answered)
    finally:
        a.cleanup()
