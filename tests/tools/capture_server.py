#!/usr/bin/python3
"""Record the Kafka request frames a real client sends, for the codec tests.

    capture_server.py --port 19092 --out frames.hex [--answer] [--connections N] [--timeout S]

Listens on 127.0.0.1:PORT. For each connection it reads request frames (a 4-byte big-endian
length, then that many bytes) and appends each frame's bytes, without the length prefix, as one
line of hex to OUT. Without --answer it never replies and closes a connection once the client
has gone quiet for --idle seconds; clients then reconnect and send the same request again.

With --answer it plays a minimal old broker, just enough to get a client to its next request:
ApiVersions v3+ gets UNSUPPORTED_VERSION in a v0 body (KIP-511) advertising ApiVersions 0-2, so
the client retries lower; ApiVersions v0-2 gets a fixed list of APIs (Kafka 2.x-like ranges);
Metadata v0-4 gets one broker (this server, node 0) and every requested topic with one
partition led by it; FindCoordinator v0-2 names node 0 as the coordinator. Anything else is
recorded and left unanswered.

Stops after --connections connections have been accepted and handled, or after --timeout
seconds. Standard library only.
"""

import argparse
import socket
import struct
import sys
import threading
import time

UNSUPPORTED_VERSION = 35

# (key, min, max) advertised with --answer: what a Kafka 2.x broker offers the clients here.
ADVERTISED = [(0, 0, 7), (1, 0, 11), (2, 0, 2), (3, 0, 4), (8, 0, 7), (9, 0, 7), (10, 0, 2),
              (11, 0, 5), (12, 0, 3), (13, 0, 1), (14, 0, 3), (18, 0, 2), (19, 0, 4),
              (20, 0, 1), (22, 0, 4)]


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def kstring(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def int32_array(values):
    return struct.pack(">i", len(values)) + b"".join(struct.pack(">i", v) for v in values)


class Request:
    """The classic (non-flexible) request header, and the rest of the frame."""

    def __init__(self, frame):
        self.key, self.version, self.correlation_id, n = struct.unpack_from(">hhih", frame, 0)
        pos = 10 + max(n, 0)
        self.client_id = frame[10:pos].decode(errors="replace") if n >= 0 else None
        self.body = frame[pos:]


def api_versions_response(req):
    if req.version > 2:
        # KIP-511: a v0 body saying which ApiVersions versions we speak.
        return struct.pack(">hi", UNSUPPORTED_VERSION, 1) + struct.pack(">hhh", 18, 0, 2)
    body = struct.pack(">hi", 0, len(ADVERTISED))
    body += b"".join(struct.pack(">hhh", *k) for k in ADVERTISED)
    if req.version >= 1:
        body += struct.pack(">i", 0)  # throttle_time_ms
    return body


def metadata_response(req, port):
    """Metadata v0-4 (non-flexible): every requested topic exists with one partition on node 0."""
    v = req.version
    count, = struct.unpack_from(">i", req.body, 0)
    topics, pos = [], 4
    for _ in range(max(count, 0)):
        n, = struct.unpack_from(">h", req.body, pos)
        topics.append(req.body[pos + 2:pos + 2 + n].decode())
        pos += 2 + n
    out = b""
    if v >= 3:
        out += struct.pack(">i", 0)                                   # throttle_time_ms
    out += struct.pack(">i", 1) + struct.pack(">i", 0) + kstring("127.0.0.1") + struct.pack(">i", port)
    if v >= 1:
        out += kstring(None)                                           # rack
    if v >= 2:
        out += kstring("capture-cluster")                              # cluster_id
    if v >= 1:
        out += struct.pack(">i", 0)                                   # controller_id
    out += struct.pack(">i", len(topics))
    for t in topics:
        out += struct.pack(">h", 0) + kstring(t)
        if v >= 1:
            out += b"\x00"                                             # is_internal
        out += struct.pack(">i", 1) + struct.pack(">hii", 0, 0, 0) + int32_array([0]) + int32_array([0])
    return out


def find_coordinator_response(req, port):
    """FindCoordinator v0-2 (non-flexible): the coordinator of everything is node 0, us."""
    out = b""
    if req.version >= 1:
        out += struct.pack(">i", 0)                                   # throttle_time_ms
    out += struct.pack(">h", 0)                                       # error_code
    if req.version >= 1:
        out += kstring(None)                                           # error_message
    return out + struct.pack(">i", 0) + kstring("127.0.0.1") + struct.pack(">i", port)


def answer(req, port):
    """The response body for a request we know how to answer, or None."""
    if req.key == 18:
        return api_versions_response(req)
    if req.key == 3 and req.version <= 4:
        return metadata_response(req, port)
    if req.key == 10 and req.version <= 2:
        return find_coordinator_response(req, port)
    return None


class Capture:
    def __init__(self, out, idle, answering, port):
        self.out = out
        self.idle = idle
        self.answering = answering
        self.port = port
        self.lock = threading.Lock()

    def record(self, frame):
        with self.lock:
            self.out.write(frame.hex() + "\n")
            self.out.flush()

    def serve(self, conn, peer, number):
        conn.settimeout(self.idle)
        frames = 0
        try:
            while True:
                head = read_exact(conn, 4)
                if head is None:
                    break
                size, = struct.unpack(">i", head)
                if size < 10 or size > 100 << 20:
                    print("capture: bad frame length %d, closing" % size, file=sys.stderr)
                    break
                frame = read_exact(conn, size)
                if frame is None:
                    break
                self.record(frame)
                frames += 1
                body = answer(Request(frame), self.port) if self.answering else None
                if body is not None:
                    # Response header v0: these are all non-flexible answers.
                    resp = struct.pack(">i", Request(frame).correlation_id) + body
                    conn.sendall(struct.pack(">i", len(resp)) + resp)
        except (socket.timeout, ConnectionError, struct.error):
            pass
        finally:
            conn.close()
        print("capture: connection %d from %s:%d: %d frame(s)" % (number, peer[0], peer[1], frames),
              file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True, help="file the hex lines are appended to")
    ap.add_argument("--answer", action="store_true", help="answer ApiVersions and Metadata like an old broker")
    ap.add_argument("--connections", type=int, default=3, help="stop after this many connections")
    ap.add_argument("--timeout", type=float, default=20.0, help="stop after this many seconds")
    ap.add_argument("--idle", type=float, default=0.5, help="close a connection silent this long")
    args = ap.parse_args()

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(8)
    deadline = time.monotonic() + args.timeout
    threads = []
    with open(args.out, "a", encoding="ascii") as out:
        cap = Capture(out, args.idle, args.answer, args.port)
        while len(threads) < args.connections:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            srv.settimeout(left)
            try:
                conn, peer = srv.accept()
            except socket.timeout:
                break
            t = threading.Thread(target=cap.serve, args=(conn, peer, len(threads) + 1), daemon=True)
            t.start()
            threads.append(t)
        srv.close()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + args.idle + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
