"""Hostile and broken clients: the agent logs, answers with the right error or closes that one
connection, and keeps serving everybody else."""
import random
import struct

import kwire
from harness import Agent, expect, kcat


def api_versions_ok(sock, corr):
    sock.sendall(kwire.request(18, 0, corr, b""))
    frame = kwire.read_frame(sock)
    expect(frame is not None, "no ApiVersions answer")
    got_corr, err = struct.unpack_from(">ih", frame, 0)
    expect(got_corr == corr and err == 0, "ApiVersions answer corr=%d err=%d" % (got_corr, err))


def test_bad_frames_do_not_hurt_other_clients():
    a = Agent(env={"SLUICE_MAX_REQUEST_BYTES": "1MiB"}).start()
    try:
        bystander = kwire.connect(a.port)  # a well-behaved client, connected the whole time
        api_versions_ok(bystander, 1)

        # 1. A frame cut short, then the client goes away.
        s = kwire.connect(a.port)
        s.sendall(struct.pack(">i", 100) + b"\x00\x12" + b"x" * 8)
        s.close()

        # 2. A 2 GiB length prefix: closed at once, with a log line, no allocation.
        s = kwire.connect(a.port)
        s.sendall(struct.pack(">I", 0x7FFFFFFF))
        expect(kwire.closed_by_peer(s), "2 GiB length prefix: connection not closed")
        s = kwire.connect(a.port)
        s.sendall(struct.pack(">i", -5))
        expect(kwire.closed_by_peer(s), "negative length prefix: connection not closed")
        s = kwire.connect(a.port)
        s.sendall(struct.pack(">i", 2 * 1024 * 1024))
        expect(kwire.closed_by_peer(s), "length over max-request-bytes: connection not closed")

        # 3. An unknown API key.
        s = kwire.connect(a.port)
        s.sendall(kwire.request(9999, 0, 7, b""))
        expect(kwire.closed_by_peer(s), "unknown API key: connection not closed")

        # 4. A known API with a body that does not parse.
        s = kwire.connect(a.port)
        s.sendall(kwire.request(3, 1, 8, struct.pack(">i", 1000000)))  # Metadata claiming 1M topics
        expect(kwire.closed_by_peer(s), "malformed Metadata: connection not closed")

        # 5. Random bytes, many times.
        rnd = random.Random(1234)
        for i in range(50):
            s = kwire.connect(a.port)
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300)))
            if i % 2:
                junk = struct.pack(">i", len(junk)) + junk  # well framed junk
            s.sendall(junk)
            s.close()

        # The agent is alive, and so is the bystander's connection.
        expect(a.alive(), "agent died")
        api_versions_ok(bystander, 2)
        out = kcat(a, "-L").decode()
        expect("broker 0 at" in out, out)
        log = a.log_text()
        expect("request length" in log, "no log line about the absurd length")
        expect("unknown API key 9999" in log, "no log line about the unknown API key")
        expect("malformed Metadata" in log, "no log line about the malformed request")
    finally:
        a.cleanup()


def test_corrupted_crc_gets_corrupt_message():
    a = Agent().start()
    try:
        s = kwire.connect(a.port)
        s.sendall(kwire.request(3, 1, 1, kwire.metadata_v1_body(["crc-topic"])))  # auto-creates
        expect(kwire.read_frame(s) is not None, "no metadata answer")

        good = kwire.record_batch([b"hello", b"world"])
        s.sendall(kwire.request(0, 3, 2, kwire.produce_v3_body("crc-topic", 0, good)))
        corr, parts = kwire.parse_produce_v3_response(kwire.read_frame(s))
        expect(corr == 2 and parts == [("crc-topic", 0, 0, 0)], "good batch: %r" % parts)

        bad = bytearray(good)
        bad[-3] ^= 0xFF  # a payload byte: the CRC no longer matches
        s.sendall(kwire.request(0, 3, 3, kwire.produce_v3_body("crc-topic", 0, bytes(bad))))
        corr, parts = kwire.parse_produce_v3_response(kwire.read_frame(s))
        expect(corr == 3 and parts[0][2] == 2, "corrupt batch answered %r, want CORRUPT_MESSAGE (2)" % parts)

        truncated = good[:-4]
        s.sendall(kwire.request(0, 3, 4, kwire.produce_v3_body("crc-topic", 0, truncated)))
        corr, parts = kwire.parse_produce_v3_response(kwire.read_frame(s))
        expect(corr == 4 and parts[0][2] == 2, "truncated batch answered %r" % parts)

        # Nothing of the bad batches was stored: the next good one gets offset 2.
        s.sendall(kwire.request(0, 3, 5, kwire.produce_v3_body("crc-topic", 0, good)))
        corr, parts = kwire.parse_produce_v3_response(kwire.read_frame(s))
        expect(parts == [("crc-topic", 0, 0, 2)], "after bad batches: %r" % parts)
        expect("crc" in a.log_text().lower(), "no log line about the CRC")
    finally:
        a.cleanup()


def test_api_versions_downgrade_kip511():
    a = Agent().start()
    try:
        s = kwire.connect(a.port)
        # ApiVersions v99: answered with a v0 body, UNSUPPORTED_VERSION, and the served ranges.
        s.sendall(kwire.request(18, 99, 11, b"\x00\x00"))
        frame = kwire.read_frame(s)
        corr, err, n = struct.unpack_from(">ihi", frame, 0)
        expect(corr == 11 and err == 35, "corr=%d err=%d" % (corr, err))
        ranges = {}
        for i in range(n):
            key, lo, hi = struct.unpack_from(">hhh", frame, 10 + 6 * i)
            ranges[key] = (lo, hi)
        expect(ranges.get(18) == (0, 3), "ApiVersions range %r" % (ranges.get(18),))
        expect(all(lo == 0 for lo, _ in ranges.values()), "every API advertised from version 0: %r" % ranges)
        # The same connection keeps working.
        api_versions_ok(s, 12)
    finally:
        a.cleanup()


CODECS = {"gzip": (1, kwire.gzip_stored), "snappy": (2, kwire.snappy_literal), "lz4": (3, kwire.lz4_stored),
          "zstd": (4, kwire.zstd_raw)}


def test_records_are_checked_inside_compressed_batches():
    """Like Kafka's LogValidator: garbage inside gzip, snappy, lz4 and zstd batches (with a valid
    CRC), a zstd batch claiming 2^31-1 records, records whose offset deltas are wrong (plain and
    compressed) and a count the records do not match are all refused with CORRUPT_MESSAGE or
    INVALID_RECORD, nothing of them is stored, and the next good produce works."""
    import os
    a = Agent(env={"SLUICE_WORKERS": "1"}).start()
    try:
        s = kwire.connect(a.port)
        corr = [0]

        def produce(batch, version=7):  # zstd needs Produce v7 (KIP-110)
            corr[0] += 1
            s.sendall(kwire.request(0, version, corr[0], kwire.produce_v3_body("checked", 0, batch)))
            frame = kwire.read_frame(s)
            expect(frame is not None, "the connection closed")
            return kwire.parse_produce_v3_response(frame, version)[1][0][2]

        s.sendall(kwire.request(3, 1, 0, kwire.metadata_v1_body(["checked"])))
        kwire.read_frame(s)
        good = []

        def produce_good(tag):
            v = b"good-%d-%s" % (len(good), tag.encode())
            err = produce(kwire.record_batch([v]))
            expect(err == 0, "a good produce after %s got error %d" % (tag, err))
            good.append(v)

        for name, (codec, enc) in CODECS.items():  # the hand-made codecs are sound
            v = b"good-%d-%s" % (len(good), name.encode())
            err = produce(kwire.record_batch([v], codec=codec, compressed=enc))
            expect(err == 0, "a sound %s batch got error %d" % (name, err))
            good.append(v)
        err = produce(kwire.record_batch([b"zstd-v3"], codec=4, compressed=kwire.zstd_raw), version=3)
        expect(err == 76, "a zstd batch in Produce v3 answered %d, not UNSUPPORTED_COMPRESSION_TYPE (76)" % err)
        bad = {name + " with garbage inside": kwire.record_batch([b"a" * 40, b"b" * 40], codec=codec,
                                                                 compressed=lambda r: os.urandom(len(r)))
               for name, (codec, _) in CODECS.items()}
        bad["zstd claiming 2^31-1 records"] = kwire.record_batch([b"x"], codec=4, compressed=kwire.zstd_raw,
                                                                 records_count=2**31 - 1,
                                                                 last_offset_delta=2**31 - 2)
        bad["offset deltas 0, 5"] = kwire.record_batch([b"a", b"b"], offset_deltas=[0, 5])
        bad["lz4 with offset deltas 1, 0"] = kwire.record_batch([b"a", b"b"], codec=3, compressed=kwire.lz4_stored,
                                                                offset_deltas=[1, 0])
        bad["3 records said, 2 there"] = kwire.record_batch([b"a", b"b"], records_count=3, last_offset_delta=2)
        bad["gzip, 2 records said, 3 there"] = kwire.record_batch([b"a", b"b", b"c"], codec=1,
                                                                  compressed=kwire.gzip_stored, records_count=2,
                                                                  last_offset_delta=1)
        for what, batch in bad.items():
            err = produce(batch)
            expect(err in (2, 87), "%s: answered %d, not CORRUPT_MESSAGE (2) or INVALID_RECORD (87)" % (what, err))
            produce_good(what)
        s.close()
        out = kcat(a, "-C", "-t", "checked", "-p", "0", "-o", "beginning", "-e", "-q")
        got = out.split(b"\n")[:-1]
        print("    %d bad batches refused, %d good ones stored and read back" % (len(bad), len(good)))
        expect(got == good, "read back %r, expected %r" % (got[:12], good[:12]))
    finally:
        a.cleanup()
