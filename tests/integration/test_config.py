"""Configuration: flags beat environment variables; unknown flags and bad values give one clear
error line and exit status 2; SIGTERM drains and exits 0."""
import os
import subprocess
import time

from confluent_kafka import Producer

from harness import AGENT_BIN, Agent, expect, kcat


def agent_rc(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([AGENT_BIN, "agent"] + args, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    return p.returncode, p.stderr.decode()


def test_bad_flags_and_values_exit_2_with_one_line():
    cases = [
        (["--no-such-flag", "1"], {}, "unknown flag '--no-such-flag'"),
        (["--kafka-port", "70000"], {}, "invalid value '70000' for --kafka-port"),
        (["--batch-timeout=5parsecs"], {}, "invalid value '5parsecs' for --batch-timeout"),
        ([], {"SLUICE_BATCH_MAX_BYTES": "lots"}, "invalid value 'lots' for SLUICE_BATCH_MAX_BYTES"),
        ([], {"SLUICE_AUTO_CREATE_TOPICS": "maybe"}, "invalid value 'maybe' for SLUICE_AUTO_CREATE_TOPICS"),
        (["--kafka-port"], {}, "flag --kafka-port needs a value"),
        (["stray"], {}, "unexpected argument 'stray'"),
    ]
    for args, env, want in cases:
        rc, err = agent_rc(args, env)
        expect(rc == 2, "%r %r: exit %d" % (args, env, rc))
        lines = err.strip().splitlines()
        expect(len(lines) == 1 and want in lines[0], "%r %r: stderr %r" % (args, env, err))
    rc, err = agent_rc(["--bucket-url", "ftp://nowhere", "--steering", "off"], {"SLUICE_KAFKA_PORT": "1"})
    expect(rc == 1 and "ftp://nowhere" in err, "bad bucket url: %d %r" % (rc, err))
    rc, err = agent_rc(["--steering", "sometimes"])
    expect(rc == 2 and "invalid value 'sometimes' for steering (auto, on, off)" in err, "bad steering: %d %r" % (rc, err))


def test_flag_beats_environment_and_auto_create_off():
    a = Agent(env={"SLUICE_AUTO_CREATE_TOPICS": "true", "SLUICE_DEFAULT_PARTITIONS": "3"},
              args=["--auto-create-topics", "false"]).start()
    try:
        out = kcat(a, "-L", "-t", "not-created").decode()
        expect("Broker: Unknown topic or partition" in out or "not-created\" with 0 partitions" in out
               or "Unknown topic" in out, out)
        a.stop()
        a.args = ["--default-partitions", "5"]
        a.start()
        kcat(a, "-P", "-t", "auto", input=b"x\n")
        out = kcat(a, "-L", "-t", "auto").decode()
        expect('topic "auto" with 5 partitions' in out, out)
    finally:
        a.cleanup()


def test_sigterm_flushes_and_exits_0():
    # A produce is in flight when SIGTERM comes: its flush waits on an object store that answers
    # PUTs after 1.5 s (a flush starts at once when the store is idle: group commit). The agent
    # drains: the produce is acknowledged, then the agent exits 0.
    import s3server
    s3 = s3server.S3Server()
    a = Agent(env={"SLUICE_LOG_LEVEL": "debug", "SLUICE_WORKERS": "1", **s3.agent_env("drain")})
    try:
        a.start()
        kcat(a, "-P", "-t", "drain", "-p", "0", input=b"warm\n")
        s3.delay(1500, method="PUT")
        acked = []
        # The warm-up's produce is logged too: wait for one more (this producer's, now in flight).
        before = a.log_text().count("Produce v")
        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 0})
        p.produce("drain", b"in flight", on_delivery=lambda err, msg: acked.append(err))
        deadline = time.time() + 10
        while a.log_text().count("Produce v") <= before and time.time() < deadline:
            p.poll(0.05)
        time.sleep(0.2)
        p.poll(0)
        expect(not acked, "acked before the slow PUT finished")
        rc = a.stop()
        p.flush(5)
        expect(rc == 0, "exit status %r" % rc)
        expect(acked == [None], "in-flight produce at SIGTERM: %r" % acked)
        expect("drained, exiting" in a.log_text(), "no drain log line")
    finally:
        a.cleanup()
        s3.cleanup()
