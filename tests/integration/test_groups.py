"""Consumer groups through the group coordinator: kafkajs, confluent-kafka (librdkafka) and
@platformatic/kafka groups that rebalance, commit and resume; one group across three agents
(PostgreSQL + s3rver), with steering on and off."""
import os
import signal
import subprocess
import threading
import time

from harness import Agent, expect

HERE = os.path.dirname(os.path.abspath(__file__))
JS = os.path.join(HERE, "..", "js")
NODE = os.path.join(JS, "node_modules", ".bin", "node")


class NodeConsumer:
    """A kafkajs group member (tests/js/kafkajs_group.js) whose output lines are collected."""

    def __init__(self, bootstrap, topic, group):
        import tempfile
        self.err = tempfile.TemporaryFile()  # a file, not a pipe: a chatty client never blocks on it
        self.proc = subprocess.Popen([NODE, os.path.join(JS, "kafkajs_group.js"), "consume", bootstrap, topic, group],
                                     stdout=subprocess.PIPE, stderr=self.err, cwd=JS)
        self.got = []           # (id, partition, offset)
        self.assigned = []      # partitions assigned after each join
        self.stopped = False
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            f = line.decode().split()
            with self.lock:
                if f[0] == "got":
                    self.got.append((int(f[1]), int(f[2]), int(f[3])))
                elif f[0] == "assigned":
                    self.assigned.append(int(f[1]))
                elif f[0] == "stopped":
                    self.stopped = True

    def count(self):
        with self.lock:
            return len(self.got)

    def stop(self):
        """SIGTERM: the consumer commits, leaves the group and exits."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("kafkajs consumer did not stop")
        self.err.seek(0)
        expect(self.proc.returncode == 0, "kafkajs consumer exited %s: %s" %
               (self.proc.returncode, self.err.read().decode(errors="replace")[-2000:]))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def node_produce(bootstrap, topic, first, count):
    p = subprocess.run([NODE, os.path.join(JS, "kafkajs_group.js"), "produce", bootstrap, topic, str(first), str(count)],
                       cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    expect(p.returncode == 0, "kafkajs producer: %s" % p.stderr.decode()[-2000:])


def wait_for(cond, what, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def create_topic(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def ids_of(consumers):
    out = []
    for c in consumers:
        with c.lock:
            out += [g[0] for g in c.got]
    return out


def test_kafkajs_group_rebalances_and_resumes():
    a = Agent().start()
    consumers = []
    try:
        create_topic(a.bootstrap, "kjs", 6)
        consumers = [NodeConsumer(a.bootstrap, "kjs", "kjs-group") for _ in range(3)]
        # Every member ends up with 2 of the 6 partitions once the group settled.
        wait_for(lambda: all(c.assigned and c.assigned[-1] == 2 for c in consumers), "3 members with 2 partitions each")
        node_produce(a.bootstrap, "kjs", 0, 3000)
        wait_for(lambda: len(ids_of(consumers)) >= 3000, "the first 3000 messages")
        # One member leaves mid-stream: the other two take its partitions over.
        consumers[0].stop()
        node_produce(a.bootstrap, "kjs", 3000, 3000)
        wait_for(lambda: len(set(ids_of(consumers))) >= 6000, "all 6000 messages")
        time.sleep(1)
        ids = ids_of(consumers)
        expect(sorted(ids) == list(range(6000)), "each message once: %d received, %d distinct" %
               (len(ids), len(set(ids))))
        expect(consumers[1].assigned[-1] + consumers[2].assigned[-1] == 6,
               "after the leave: %r + %r partitions" % (consumers[1].assigned, consumers[2].assigned))
        for c in consumers[1:]:
            c.stop()
        # A new member resumes from the committed offsets: only what came after.
        node_produce(a.bootstrap, "kjs", 6000, 600)
        late = NodeConsumer(a.bootstrap, "kjs", "kjs-group")
        consumers.append(late)
        wait_for(lambda: late.count() >= 600, "the 600 later messages")
        time.sleep(1)
        ids = ids_of([late])
        expect(sorted(ids) == list(range(6000, 6600)), "resumed consumer read %d messages, first %r" %
               (len(ids), sorted(ids)[:5]))
        late.stop()
    finally:
        for c in consumers:
            c.kill()
        a.cleanup()


def confluent_produce(bootstrap, topic, first, count):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for i in range(first, first + count):
        p.produce(topic, key=str(i).encode(), value=str(i).encode(),
                  on_delivery=lambda err, m: err and errors.append(err))
        p.poll(0)
    expect(p.flush(30) == 0, "messages left unflushed")
    expect(not errors, "delivery errors: %r" % errors[:3])


def group_consumer(bootstrap, group, **extra):
    from confluent_kafka import Consumer
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100, "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500}
    conf.update(extra)
    return Consumer(conf)


def poll_ids(c, want, timeout=60):
    """Polls until want messages arrived; returns their ids in arrival order."""
    ids = []
    deadline = time.time() + timeout
    while len(ids) < want and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        expect(m.error() is None, "consume error %r" % m.error())
        ids.append(int(m.value()))
    return ids


def test_confluent_group_manual_commits_across_agent_restart():
    a = Agent().start()
    try:
        create_topic(a.bootstrap, "ck", 4)
        confluent_produce(a.bootstrap, "ck", 0, 2000)
        c = group_consumer(a.bootstrap, "ck-group")
        c.subscribe(["ck"])
        ids = poll_ids(c, 1000)
        expect(len(ids) == 1000, "first consumer got %d of 1000" % len(ids))
        c.commit(asynchronous=False)
        committed = set(ids)
        committed_offsets = {(tp.partition, tp.offset) for tp in c.committed(c.assignment(), timeout=10)}
        expect(sum(off for _, off in committed_offsets if off >= 0) == 1000,
               "committed offsets %r do not add up to 1000" % sorted(committed_offsets))
        after = poll_ids(c, 50)  # read but never committed
        c.close()

        a.stop()
        a.start()
        c = group_consumer(a.bootstrap, "ck-group")
        c.subscribe(["ck"])
        ids2 = poll_ids(c, 1000)
        time.sleep(1)
        ids2 += poll_ids(c, 1, timeout=1)
        c.close()
        expect(len(ids2) == len(set(ids2)), "%d repeated within the resumed consumer" % (len(ids2) - len(set(ids2))))
        expect(not committed & set(ids2), "%d committed messages read again" % len(committed & set(ids2)))
        expect(committed | set(ids2) == set(range(2000)), "lost: %r" % sorted(set(range(2000)) - committed - set(ids2))[:10])
        expect(set(after) <= set(ids2), "uncommitted messages were not read again")
    finally:
        a.cleanup()


def cluster_group(steering):
    """One group whose three members reach three agents (PostgreSQL + s3rver), one of them in
    another agent group: every partition assigned exactly once, every message read once."""
    import harness
    from test_cluster import Cluster
    try:
        cl = Cluster()
    except harness.Skip as e:  # a multi-agent group needs the real stores: no stand-ins
        raise AssertionError("PostgreSQL and s3rver are needed: %s" % e)
    consumers = []
    try:
        agents = [cl.agent(SLUICE_AGENT_GROUP="east", SLUICE_STEERING=steering),
                  cl.agent(SLUICE_AGENT_GROUP="east", SLUICE_STEERING=steering),
                  cl.agent(SLUICE_AGENT_GROUP="west", SLUICE_STEERING=steering)]
        create_topic(agents[0].bootstrap, "spread", 6)
        confluent_produce(agents[1].bootstrap, "spread", 0, 600)
        assigned = [None, None, None]
        assigns = [0, 0, 0]  # rebalances each member went through
        got = [[], [], []]

        def on_assign(i):
            def cb(consumer, partitions):
                assigned[i] = sorted(p.partition for p in partitions)
                assigns[i] += 1
            return cb

        for i, a in enumerate(agents):
            c = group_consumer(a.bootstrap, "spread-group", **{"partition.assignment.strategy": "range"})
            c.subscribe(["spread"], on_assign=on_assign(i))
            consumers.append(c)
        deadline = time.time() + 90
        while sum(len(g) for g in got) < 600 and time.time() < deadline:
            for i, c in enumerate(consumers):
                m = c.poll(0.05)
                if m is not None and m.error() is None:
                    got[i].append(int(m.value()))
        final = list(assigned)
        for _ in range(40):  # the group stays settled: no member loses its partitions
            for c in consumers:
                c.poll(0.05)
        expect(assigned == final, "assignments changed after the group settled: %r -> %r" % (final, assigned))
        expect(assigns == [1, 1, 1], "not one rebalance: each member was assigned %r times" % assigns)
        expect(all(final), "a member without partitions: %r" % final)
        expect(sorted(p for a in final for p in a) == list(range(6)), "partitions not assigned once: %r" % final)
        ids = [x for g in got for x in g]
        expect(sorted(ids) == list(range(600)), "%d messages read, %d distinct" % (len(ids), len(set(ids))))
    finally:
        for c in consumers:
            c.close()
        cl.cleanup()


def test_group_across_three_agents_and_two_agent_groups():
    cluster_group("auto")


def test_group_across_agents_with_steering_off():
    cluster_group("off")


def platformatic_run(bootstrap, topic, group, first, count):
    p = subprocess.run([NODE, os.path.join(JS, "platformatic_group.mjs"), bootstrap, topic, group, str(first), str(count)],
                       cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
    expect(p.returncode == 0, "@platformatic/kafka exited %d: %s" % (p.returncode, p.stderr.decode()[-2000:]))
    return [int(line.split()[1]) for line in p.stdout.decode().splitlines() if line.startswith("got ")]


def test_platformatic_group_consumes_and_resumes():
    a = Agent().start()
    try:
        create_topic(a.bootstrap, "plt", 3)
        ids = platformatic_run(a.bootstrap, "plt", "plt-group", 0, 300)
        expect(sorted(ids) == list(range(300)), "first run: %d messages, %d distinct" % (len(ids), len(set(ids))))
        # The same group again: it starts at the committed offsets, so it reads only the new ones.
        ids = platformatic_run(a.bootstrap, "plt", "plt-group", 300, 90)
        time.sleep(0.1)
        expect(sorted(ids) == list(range(300, 390)), "second run: %d messages, first %r" % (len(ids), sorted(ids)[:5]))
        # Its admin client (flexible ListGroups, DescribeGroups, DeleteGroups): the group is empty now.
        import json
        p = subprocess.run([NODE, os.path.join(JS, "platformatic_group.mjs"), a.bootstrap, "admin", "plt-group"],
                           cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        expect(p.returncode == 0, "@platformatic/kafka admin: %s" % p.stderr.decode()[-2000:])
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        expect(["plt-group", "EMPTY", "consumer"] in [[i, s.upper(), t] for i, s, t in out["listed"]],
               "listed: %r" % out["listed"])
        expect(out["described"][0].upper() == "EMPTY" and out["described"][2] == 0, "described: %r" % out["described"])
        expect("plt-group" not in out["after"], "still listed after DeleteGroups: %r" % out["after"])
    finally:
        a.cleanup()


def _read_str(frame, pos):
    import struct
    (n,) = struct.unpack_from(">h", frame, pos)
    return frame[pos + 2:pos + 2 + max(n, 0)].decode(), pos + 2 + max(n, 0)


def delete_groups_v0(port, groups):
    """DeleteGroups v0 by hand: {group: error_code}."""
    import struct
    import kwire
    body = struct.pack(">i", len(groups)) + b"".join(kwire.string(g) for g in groups)
    s = kwire.connect(port)
    try:
        s.sendall(kwire.request(42, 0, 7, body))
        frame = kwire.read_frame(s)
    finally:
        s.close()
    _corr, _throttle, n = struct.unpack_from(">iii", frame, 0)
    pos, out = 12, {}
    for _ in range(n):
        g, pos = _read_str(frame, pos)
        (out[g],) = struct.unpack_from(">h", frame, pos)
        pos += 2
    return out


def offset_delete_v0(port, group, topic, partitions):
    """OffsetDelete v0 by hand: (top-level error, {partition: error_code})."""
    import struct
    import kwire
    body = (kwire.string(group) + struct.pack(">i", 1) + kwire.string(topic) + struct.pack(">i", len(partitions))
            + b"".join(struct.pack(">i", p) for p in partitions))
    s = kwire.connect(port)
    try:
        s.sendall(kwire.request(47, 0, 9, body))
        frame = kwire.read_frame(s)
    finally:
        s.close()
    _corr, err, _throttle, ntopics = struct.unpack_from(">ihii", frame, 0)
    pos, out = 14, {}
    for _ in range(ntopics):
        _name, pos = _read_str(frame, pos)
        (nparts,) = struct.unpack_from(">i", frame, pos)
        pos += 4
        for _ in range(nparts):
            p, e = struct.unpack_from(">ih", frame, pos)
            out[p] = e
            pos += 6
    return err, out


def offset_commit_v2(port, group, topic, partition, offset):
    """OffsetCommit v2 by hand, as a simple consumer (generation -1, no member): the partition's error."""
    import struct
    import kwire
    body = (kwire.string(group) + struct.pack(">i", -1) + kwire.string("") + struct.pack(">q", -1)
            + struct.pack(">i", 1) + kwire.string(topic) + struct.pack(">i", 1) + struct.pack(">iq", partition, offset)
            + kwire.string("m"))
    s = kwire.connect(port)
    try:
        s.sendall(kwire.request(8, 2, 5, body))
        frame = kwire.read_frame(s)
    finally:
        s.close()
    _corr, ntopics = struct.unpack_from(">ii", frame, 0)
    _name, pos = _read_str(frame, 8)
    _nparts, _p, err = struct.unpack_from(">iih", frame, pos)
    return err


def test_group_admin_list_describe_delete():
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient
    a = Agent().start()
    live = None
    try:
        create_topic(a.bootstrap, "adm", 2)
        confluent_produce(a.bootstrap, "adm", 0, 20)
        live = group_consumer(a.bootstrap, "adm-live")
        live.subscribe(["adm"])
        expect(len(poll_ids(live, 20)) == 20, "live member did not read its 20 messages")
        live.commit(asynchronous=False)
        # Simple consumers: commits with no generation and no member, nothing else.
        for group in ("adm-simple", "adm-od"):
            c = group_consumer(a.bootstrap, group)
            c.commit(offsets=[TopicPartition("adm", 0, 5), TopicPartition("adm", 1, 3)], asynchronous=False)
            c.close()

        # Offsets of topics and partitions that do not exist are refused, as Kafka does.
        expect(offset_commit_v2(a.port, "adm-bad", "no-such-topic", 0, 1) == 3, "commit to an unknown topic")
        expect(offset_commit_v2(a.port, "adm-bad", "adm", 2, 1) == 3, "commit to an unknown partition")
        expect(offset_commit_v2(a.port, "adm-bad", "adm", 1, 1) == 0, "commit to adm/1")

        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        groups = {g.id: g for g in admin.list_groups(timeout=10)}
        expect({"adm-live", "adm-simple", "adm-od"} <= set(groups), "listed: %r" % sorted(groups))
        g = groups["adm-live"]
        expect(g.state == "Stable" and g.protocol_type == "consumer" and g.protocol == "range",
               "adm-live: %s %s %s" % (g.state, g.protocol_type, g.protocol))
        expect(len(g.members) == 1 and len(g.members[0].assignment) > 0 and len(g.members[0].metadata) > 0,
               "adm-live members: %r" % [(m.id, m.assignment) for m in g.members])
        expect(groups["adm-simple"].state == "Empty", "adm-simple: %s" % groups["adm-simple"].state)

        # OffsetDelete: refused for a topic a live member subscribes to; fine for a simple group.
        err, parts = offset_delete_v0(a.port, "adm-live", "adm", [0])
        expect(err == 0 and parts == {0: 86}, "OffsetDelete on a subscribed topic: %r %r" % (err, parts))
        err, parts = offset_delete_v0(a.port, "adm-od", "adm", [0])
        expect(err == 0 and parts == {0: 0}, "OffsetDelete: %r %r" % (err, parts))
        c = group_consumer(a.bootstrap, "adm-od")
        left = {tp.partition: tp.offset for tp in c.committed([TopicPartition("adm", 0), TopicPartition("adm", 1)],
                                                               timeout=10)}
        c.close()
        expect(left == {0: -1001, 1: 3}, "offsets after OffsetDelete: %r" % left)
        err, _ = offset_delete_v0(a.port, "never-was", "adm", [0])
        expect(err == 69, "OffsetDelete on an unknown group: %r" % err)

        # DeleteGroups: not while a member is in it; unknown groups are GROUP_ID_NOT_FOUND.
        res = delete_groups_v0(a.port, ["adm-live", "adm-simple", "never-was"])
        expect(res == {"adm-live": 68, "adm-simple": 0, "never-was": 69}, "DeleteGroups: %r" % res)
        live.close()  # leaves: the group is empty now
        live = None
        res = delete_groups_v0(a.port, ["adm-live"])
        expect(res == {"adm-live": 0}, "DeleteGroups after the leave: %r" % res)
        groups = {g.id for g in admin.list_groups(timeout=10)}
        expect("adm-live" not in groups and "adm-simple" not in groups, "still listed: %r" % sorted(groups))
        c = group_consumer(a.bootstrap, "adm-live")
        gone = c.committed([TopicPartition("adm", 0)], timeout=10)[0].offset
        c.close()
        expect(gone == -1001, "a deleted group's offset is %r" % gone)
    finally:
        if live:
            live.close()
        a.cleanup()


def test_kafkajs_member_killed_session_expires():
    """A member killed without leaving stops heartbeating: after its session timeout (10 s) the
    group rebalances and the survivor reads its partitions too."""
    a = Agent().start()
    consumers = []
    try:
        create_topic(a.bootstrap, "kjs-kill", 6)
        consumers = [NodeConsumer(a.bootstrap, "kjs-kill", "kjs-kill-group") for _ in range(2)]
        wait_for(lambda: all(c.assigned and c.assigned[-1] == 3 for c in consumers), "2 members with 3 partitions each")
        node_produce(a.bootstrap, "kjs-kill", 0, 600)
        wait_for(lambda: len(ids_of(consumers)) >= 600, "the first 600 messages")
        consumers[0].kill()  # SIGKILL: no commit of what is in flight, no LeaveGroup
        killed_at = time.time()
        node_produce(a.bootstrap, "kjs-kill", 600, 600)
        wait_for(lambda: consumers[1].assigned[-1] == 6, "the survivor taking all 6 partitions", timeout=40)
        expect(time.time() - killed_at > 5, "rebalanced %.1fs after the kill, before the session timeout" %
               (time.time() - killed_at))
        wait_for(lambda: set(ids_of(consumers)) >= set(range(1200)), "all 1200 messages", timeout=40)
        consumers[1].stop()
    finally:
        for c in consumers:
            c.kill()
        a.cleanup()


def test_offsets_of_an_empty_group_expire_after_offsets_retention():
    """offsets-retention (Kafka's offsets.retention.minutes): a group that commits and then empties
    keeps its offsets for that long, then loses them; a group with a member keeps them."""
    from confluent_kafka import TopicPartition
    a = Agent(env={"SLUICE_OFFSETS_RETENTION": "2s", "SLUICE_HEARTBEAT_TIMEOUT": "600ms"}).start()
    try:
        create_topic(a.bootstrap, "kept", 1)
        confluent_produce(a.bootstrap, "kept", 0, 10)
        stay = group_consumer(a.bootstrap, "stays")
        stay.subscribe(["kept"])
        poll_ids(stay, 10)
        stay.commit(asynchronous=False)
        c = group_consumer(a.bootstrap, "leaves")
        c.subscribe(["kept"])
        poll_ids(c, 10)
        c.commit(asynchronous=False)
        c.close()  # LeaveGroup: the group is empty from now on

        def committed(group):
            probe = group_consumer(a.bootstrap, group)
            try:
                return probe.committed([TopicPartition("kept", 0)], timeout=10)[0].offset
            finally:
                probe.close()

        expect(committed("leaves") == 10, "the offset was not committed")
        t0 = time.time()
        while committed("leaves") == 10 and time.time() - t0 < 40:
            stay.poll(0.2)  # the other group's member stays alive
            time.sleep(0.5)
        gone_after = time.time() - t0
        expect(committed("leaves") < 0, "the empty group's offset still there after %.0f s" % gone_after)
        stay.poll(0.2)
        expect(committed("stays") == 10, "the live group's offset expired too")
        print("    an empty group's offsets expired %.1f s after it emptied (retention 2 s)" % gone_after)
        stay.close()
    finally:
        a.cleanup()
