#!/usr/bin/python3
"""Record the Kafka request frames a real client sends, for the codec tests.

    capture_server.py --port 19092 --out frames.hex [--connections N] [--timeout S]

Listens on 127.0.0.1:PORT. For each connection it reads request frames (a 4-byte big-endian
length, then that many bytes) and appends each frame's bytes, without the length prefix, as one
line of hex to OUT; it never answers, and closes the connection once the client has sent what
it wanted to send (or after --idle seconds of silence). Clients then retry, usually with other
versions, which is how the fallbacks get captured too. Stops after --connections connections
or --timeout seconds. Standard library only.
"""

import argparse
import socket
import sys
import time


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_connection(conn, out, idle):
    """Reads frames until the client goes quiet or closes; returns how many were recorded."""
    conn.settimeout(idle)
    frames = 0
    try:
        while True:
            head = read_exact(conn, 4)
            if head is None:
                break
            size = int.from_bytes(head, "big", signed=True)
            if size < 0 or size > 100 << 20:
                print("capture: bad frame length %d, closing" % size, file=sys.stderr)
                break
            body = read_exact(conn, size)
            if body is None:
                break
            out.write(body.hex() + "\n")
            out.flush()
            frames += 1
    except socket.timeout:
        pass
    finally:
        conn.close()
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True, help="file the hex lines are appended to")
    ap.add_argument("--connections", type=int, default=3, help="stop after this many connections")
    ap.add_argument("--timeout", type=float, default=20.0, help="stop after this many seconds")
    ap.add_argument("--idle", type=float, default=0.5, help="close a connection silent this long")
    args = ap.parse_args()

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(8)
    deadline = time.monotonic() + args.timeout
    seen = 0
    with open(args.out, "a", encoding="ascii") as out:
        while seen < args.connections:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            srv.settimeout(left)
            try:
                conn, peer = srv.accept()
            except socket.timeout:
                break
            seen += 1
            n = serve_connection(conn, out, args.idle)
            print("capture: connection %d from %s:%d: %d frame(s)" % (seen, peer[0], peer[1], n), file=sys.stderr)
    srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
