"""Locality across hosts behind an L4 load balancer (needs root): agent hosts in network
namespaces (netbed.py), XDP forwarding every slot connection to the host whose worker owns the
slot. Through HAProxy and through nftables DNAT on one segment (l2), and through a router (ipip):
every acknowledged message is consumed exactly once, and each partition is written by exactly one
worker. A host that joins takes its slots without resetting any connection; a host torn down
mid-stream loses nothing acknowledged."""
import time

import netbed
from harness import expect

TOPIC_PARTITIONS = "24"


def check_exactly_once(bed, produced, topic):
    acked = produced["acked"]
    expect(not produced["errors"], "delivery errors: %r" % produced["errors"][:5])
    got = bed.client_run("consume", "--topic", topic, "--partitions", TOPIC_PARTITIONS, "--want", str(len(acked)))
    expect(not got["errors"], "consume errors: %r" % got["errors"])
    expect(got["duplicates"] == 0, "%d duplicates" % got["duplicates"])
    seen = {(p, o): v for p, o, v in got["records"]}
    lost = [a for a in acked if seen.get((a[0], a[1])) != a[2]]
    expect(not lost, "%d of %d acknowledged messages not read back, e.g. %r" % (len(lost), len(acked), lost[:3]))
    return got


def run_through_balancer(**bed_args):
    bed = netbed.NetBed(**bed_args)
    try:
        produced = bed.client_run("produce", "--topic", "t", "--create", "--partitions", TOPIC_PARTITIONS,
                                  "--producers", "4", "--messages", "12000", "--rate", "4000", "--size", "200")
        check_exactly_once(bed, produced, "t")
        loc = bed.locality("t", produced["seconds"], bed.owners("t", 24))
        c = bed.counters()
        print("    %s, %s: %d acked, each consumed once; %.1f%% of a partition's bytes written by its owner worker, "
              "%.2f writers per partition; produce p99 %.0f ms; xdp %s"
              % (bed_args.get("balancer", "haproxy"), bed_args.get("xdp"), len(produced["acked"]),
                 100 * loc["owner_share"], loc["writers"], produced["latency_ms"]["p99"],
                 {k: v for k, v in c.items() if v}))
        expect(loc["partitions"] == 24, "partitions written: %d" % loc["partitions"])
        expect(loc["owner_share"] == 1.0 and loc["writers"] == 1.0, "locality lost: %r" % loc)
        expect(c["forwarded"] > 0, "nothing was forwarded: %r" % c)
        bed.stop_agents()
        # A clean stop takes away what the agent set up on its host.
        for h in bed.agent_hosts:
            expect("prog/xdp" not in h.run("ip", "link", "show", "eth0"), "XDP still attached on %s" % h.role)
            expect("lookup 4092" not in h.run("ip", "rule", "show"), "AnyIP rule left on %s" % h.role)
            expect(h.run("ip", "route", "show", "table", "4092", check=False).strip() == "",
                   "AnyIP routes left on %s" % h.role)
        return bed, c
    finally:
        bed.cleanup()


def test_l2_haproxy_each_partition_written_by_one_worker():
    run_through_balancer(balancer="haproxy", xdp="l2")


def test_l2_haproxy_tls_each_partition_written_by_one_worker():
    """The same over TLS: XDP steers at connection set-up, the handshake runs on the owner's worker
    (HAProxy passes TLS through; the clients check the agents' certificate against the CA)."""
    from test_tls import Certs
    certs = Certs()
    run_through_balancer(
        balancer="haproxy", xdp="l2",
        env={"SLUICE_TLS_ENABLED": "true", "SLUICE_TLS_SERVER_CERT_FILE": certs.p("server.pem"),
             "SLUICE_TLS_SERVER_PRIVATE_KEY_FILE": certs.p("server.key")},
        client_conf={"security.protocol": "ssl", "ssl.ca.location": certs.p("ca.pem"),
                     # the clients dial the balancer's address, which the test certificate does not name
                     "ssl.endpoint.identification.algorithm": "none"})


def test_l2_nftables_dnat_each_partition_written_by_one_worker():
    run_through_balancer(balancer="nft", xdp="l2")


def test_ipip_through_a_router_with_1mib_requests():
    """Routed: the landing host wraps packets to the owner, which unwraps them. Requests of 1 MiB
    and large fetch responses cross without stalls: the listeners advertise an MSS that leaves room
    for the outer header, so no wrapped packet exceeds the MTU (too_big stays 0)."""
    bed = netbed.NetBed(routed=True, balancer="haproxy", xdp="ipip")
    try:
        produced = bed.client_run("produce", "--topic", "t", "--create", "--partitions", TOPIC_PARTITIONS,
                                  "--producers", "4", "--messages", "8000", "--rate", "4000", "--size", "200")
        check_exactly_once(bed, produced, "t")
        loc = bed.locality("t")
        expect(loc["top_share"] == 1.0 and loc["writers"] == 1.0, "locality lost: %r" % loc)

        t0 = time.time()
        big = bed.client_run("produce", "--topic", "big", "--create", "--partitions", TOPIC_PARTITIONS,
                             "--producers", "2", "--messages", "96", "--size", str(512 * 1024), "--linger", "50",
                             "--acks", "all", timeout=180)
        got = check_exactly_once(bed, big, "big")
        c = bed.counters()
        print("    routed ipip: %d acked; 96 x 512 KiB (1 MiB produce requests) produced in %.1f s, read back in %.1f s;"
              " xdp %s" % (len(produced["acked"]), big["seconds"], got["seconds"], {k: v for k, v in c.items() if v}))
        expect(time.time() - t0 < 120, "large messages took %.0f s" % (time.time() - t0))
        expect(c["encapsulated"] > 0 and c["decapsulated"] > 0, "nothing went through ipip: %r" % c)
        expect(c["too_big"] == 0, "%d packets too big to wrap" % c["too_big"])
        bed.stop_agents()
    finally:
        bed.cleanup()


def connection_resets(produced):
    return {b: s for b, s in produced["brokers"].items() if s["disconnects"] or s["connects"] > 1}


def test_handover_resets_nothing_and_a_torn_down_host_loses_nothing():
    bed = netbed.NetBed(balancer="haproxy", xdp="l2")
    try:
        # A fourth host joins mid-stream: slots move to it; the producers' connections, opened on
        # the old owners, keep working through the new owner's second chance.
        p = bed.client_start("produce", "--topic", "h", "--create", "--partitions", TOPIC_PARTITIONS,
                             "--producers", "4", "--until-stopped", "--rate", "1000", "--size", "200")
        time.sleep(3)
        before = bed.counters()
        joined = bed.add_agent_host()
        time.sleep(3)
        during = bed.client_stop(p)
        after = bed.counters()
        second = after["second_chance"] - before["second_chance"]
        print("    join: %d acked while a 4th host took its slots; %d packets sent on by second chance; "
              "connections reset: %r" % (len(during["acked"]), second, connection_resets(during)))
        expect(not connection_resets(during), "connections were reset: %r" % connection_resets(during))
        expect(second > 0, "no packet took the second chance (did any slot move?)")
        check_exactly_once(bed, during, "h")

        # New connections go to the new owners, the new host among them.
        fresh = bed.client_run("produce", "--topic", "n", "--create", "--partitions", TOPIC_PARTITIONS,
                               "--producers", "2", "--messages", "4000", "--rate", "4000")
        check_exactly_once(bed, fresh, "n")
        loc = bed.locality("n")
        rows = bed.pg.psql("sluice", "SELECT DISTINCT o.key FROM chunks c JOIN objects o ON o.id = c.object_id "
                           "JOIN topics t ON t.id = c.topic_id WHERE t.name = 'n'")
        by_new_host = [k for k in rows.split() if joined.agent_id() in k]
        print("    after the join: new topic %.0f%% local, %d objects written by the new host" %
              (100 * loc["top_share"], len(by_new_host)))
        expect(loc["top_share"] == 1.0, "locality after the join: %r" % loc)
        expect(by_new_host, "the new host wrote nothing for its slots")

        # A host torn down mid-stream: clients reconnect, nothing acknowledged is lost.
        p = bed.client_start("produce", "--topic", "d", "--create", "--partitions", TOPIC_PARTITIONS,
                             "--producers", "4", "--until-stopped", "--rate", "1000", "--size", "200")
        time.sleep(3)
        victim = next(a for a in bed.agents if a.host.role == "a2")
        bed.tear_down_agent_host(victim)
        time.sleep(6)  # the heartbeat timeout (2 s), the clients' reconnections, then steady again
        torn = bed.client_stop(p, timeout=180)
        check_exactly_once(bed, torn, "d")
        print("    teardown: %d acked across the loss of a host, each read back once (%d delivery errors)"
              % (len(torn["acked"]), len(torn["errors"])))
        bed.stop_agents()
    finally:
        bed.cleanup()
