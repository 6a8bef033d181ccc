"""Just enough of the Kafka wire format to hand-craft requests in tests (good and bad ones)."""
import socket
import struct


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(v):
    v = (v << 1) ^ (v >> 63)
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def record_batch(values, base_timestamp=1700000000000):
    """An uncompressed record batch v2 holding the given values (no keys, no headers)."""
    records = b""
    for i, v in enumerate(values):
        body = bytes([0]) + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, base_timestamp, base_timestamp, -1, -1, -1,
                            len(values)) + records
    crc = crc32c(after_crc)
    batch_len = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_len, -1, 2, crc) + after_crc


def request(api_key, version, correlation_id, body, client_id="sluice-test"):
    header = struct.pack(">hhi", api_key, version, correlation_id) + string(client_id)
    return struct.pack(">i", len(header) + len(body)) + header + body


def produce_v3_body(topic, partition, records, acks=-1, timeout_ms=5000):
    return (string(None) + struct.pack(">hii", acks, timeout_ms, 1) + string(topic) + struct.pack(">ii", 1, partition)
            + struct.pack(">i", len(records)) + records)


def metadata_v1_body(topics):
    return struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)


def read_frame(sock, timeout=10):
    """One response frame (without the length), or None if the peer closed."""
    sock.settimeout(timeout)
    head = _read_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">i", head)
    return _read_exact(sock, n)


def _read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def connect(port, host="127.0.0.1", timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    return s


def closed_by_peer(sock, timeout=5):
    """True if the peer closes the connection (reads EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def parse_produce_v3_response(frame):
    """-> (correlation_id, [(topic, partition, error_code, base_offset)])"""
    corr, ntopics = struct.unpack_from(">ii", frame, 0)
    pos = 8
    out = []
    for _ in range(ntopics):
        (tl,) = struct.unpack_from(">h", frame, pos)
        topic = frame[pos + 2:pos + 2 + tl].decode()
        pos += 2 + tl
        (nparts,) = struct.unpack_from(">i", frame, pos)
        pos += 4
        for _ in range(nparts):
            part, err, base, _logtime = struct.unpack_from(">ihqq", frame, pos)
            pos += 22
            out.append((topic, part, err, base))
    return corr, out


def fetch_v4_body(topic, partition, offset, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20):
    return (struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0) + struct.pack(">i", 1) + string(topic)
            + struct.pack(">iiqi", 1, partition, offset, max_bytes))


def parse_fetch_v4_response(frame):
    """-> (correlation_id, error_code, high_watermark, records bytes) of the single partition."""
    pos = 4 + 4  # correlation id, throttle time
    (corr,) = struct.unpack_from(">i", frame, 0)
    pos += 4  # topics count (1)
    (tl,) = struct.unpack_from(">h", frame, pos)
    pos += 2 + tl + 4  # topic name, partitions count (1)
    _part, err, hwm, _lso, naborted = struct.unpack_from(">ihqqi", frame, pos)
    pos += 26 + max(naborted, 0) * 16
    (rlen,) = struct.unpack_from(">i", frame, pos)
    return corr, err, hwm, frame[pos + 4:pos + 4 + max(rlen, 0)]


def batches(records):
    """[(base_offset, last_offset)] of the record batches in a records field (a partial batch at
    the end, which a fetch may return, is left out)."""
    out, pos = [], 0
    while pos + 61 <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        if pos + 12 + length > len(records):
            break
        (delta,) = struct.unpack_from(">i", records, pos + 23)
        out.append((base, base + delta))
        pos += 12 + length
    return out


def list_offsets_v1_body(topic, partition, timestamp):
    return struct.pack(">ii", -1, 1) + string(topic) + struct.pack(">iiq", 1, partition, timestamp)


def parse_list_offsets_v1_response(frame):
    """-> (error_code, offset) of the single partition."""
    pos = 4 + 4  # correlation id, topics count
    (tl,) = struct.unpack_from(">h", frame, pos)
    pos += 2 + tl + 4
    _part, err, _ts, offset = struct.unpack_from(">ihqq", frame, pos)
    return err, offset
