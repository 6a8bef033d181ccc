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


def records_body(values, offset_deltas=None):
    """The records section of a batch: each value a record (no key, no headers)."""
    out = b""
    for i, v in enumerate(values):
        delta = offset_deltas[i] if offset_deltas else i
        body = bytes([0]) + varint(0) + varint(delta) + varint(-1) + varint(len(v)) + v + varint(0)
        out += varint(len(body)) + body
    return out


def record_batch(values, base_timestamp=1700000000000, codec=0, compressed=None, records_count=None,
                 last_offset_delta=None, offset_deltas=None, producer=(-1, -1, -1)):
    """A record batch v2 holding the given values (no keys, no headers). codec sets the attribute
    bits and compressed (records section -> bytes) the payload; records_count, last_offset_delta and
    offset_deltas override what the header and the records say (for batches that lie); producer is
    (producer id, epoch, base sequence) for an idempotent producer's batch."""
    records = records_body(values, offset_deltas)
    if compressed:
        records = compressed(records)
    n = len(values) if records_count is None else records_count
    last = n - 1 if last_offset_delta is None else last_offset_delta
    pid, epoch, seq = producer
    after_crc = struct.pack(">hiqqqhii", codec, last, base_timestamp, base_timestamp, pid, epoch, seq, n) + records
    crc = crc32c(after_crc)
    batch_len = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_len, -1, 2, crc) + after_crc


# Compressed payloads made by hand (no Python codec modules here): every format can carry its
# data stored, which is all a test of the broker's checks needs.

def gzip_stored(data):
    import gzip
    return gzip.compress(data)


def zstd_raw(data):
    """A zstd frame: single segment, one raw block."""
    assert len(data) < 256
    block = 1 | (len(data) << 3)  # last block, raw
    return struct.pack("<I", 0xFD2FB528) + bytes([0x20, len(data)]) + struct.pack("<I", block)[:3] + data


def _xxh32(data, seed=0):
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    m = 0xFFFFFFFF
    rotl = lambda x, r: ((x << r) | (x >> (32 - r))) & m  # noqa: E731
    i, n = 0, len(data)
    if n >= 16:
        v = [(seed + p1 + p2) & m, (seed + p2) & m, seed & m, (seed - p1) & m]
        while i + 16 <= n:
            for k in range(4):
                (w,) = struct.unpack_from("<I", data, i + 4 * k)
                v[k] = (rotl((v[k] + w * p2) & m, 13) * p1) & m
            i += 16
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
    else:
        h = (seed + p5) & m
    h = (h + n) & m
    while i + 4 <= n:
        (w,) = struct.unpack_from("<I", data, i)
        h = (rotl((h + w * p3) & m, 17) * p4) & m
        i += 4
    while i < n:
        h = (rotl((h + data[i] * p5) & m, 11) * p1) & m
        i += 1
    h ^= h >> 15
    h = (h * p2) & m
    h ^= h >> 13
    h = (h * p3) & m
    return h ^ (h >> 16)


def lz4_stored(data):
    """An LZ4 frame (what Kafka's lz4 codec is): one uncompressed block."""
    flg, bd = 0x60, 0x40  # version 1, independent blocks; 64 KiB blocks
    hc = (_xxh32(bytes([flg, bd])) >> 8) & 0xFF
    return (struct.pack("<I", 0x184D2204) + bytes([flg, bd, hc]) + struct.pack("<I", 0x80000000 | len(data)) + data
            + struct.pack("<I", 0))


def snappy_literal(data):
    """Raw snappy (librdkafka's): the length, then one literal."""
    assert 0 < len(data) <= 256
    return varint_u(len(data)) + (bytes([60 << 2, len(data) - 1]) if len(data) > 60 else bytes([(len(data) - 1) << 2])) \
        + data


def varint_u(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


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


def parse_produce_v3_response(frame, version=3):
    """-> (correlation_id, [(topic, partition, error_code, base_offset)]) of a v3..v7 response
    (v5 adds log_start_offset to each partition)."""
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
            pos += 22 if version < 5 else 30
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


def init_producer_id_body(version, transactional_id=None, producer_id=-1, epoch=-1, timeout_ms=60000):
    """InitProducerId v0..v1, or v3+ (flexible: send with request_flex)."""
    if version < 2:
        return string(transactional_id) + struct.pack(">i", timeout_ms)
    tid = b"\x00" if transactional_id is None else varint_u(len(transactional_id) + 1) + transactional_id.encode()
    return tid + struct.pack(">iqh", timeout_ms, producer_id, epoch) + b"\x00"


def request_flex(api_key, version, correlation_id, body, client_id="sluice-test"):
    """A request with header v2 (flexible versions): the client id stays a plain string."""
    header = struct.pack(">hhi", api_key, version, correlation_id) + string(client_id) + b"\x00"
    return struct.pack(">i", len(header) + len(body)) + header + body


def parse_init_producer_id_response(frame, version):
    """-> (error_code, producer_id, epoch)."""
    pos = 4 + (1 if version >= 2 else 0) + 4  # correlation id, tagged fields, throttle time
    err, pid, epoch = struct.unpack_from(">hqh", frame, pos)
    return err, pid, epoch


def _compact_string(s):
    return varint_u(len(s) + 1) + s.encode()


def describe_producers_body(topics):
    """DescribeProducers v0 (flexible): topics is [(name, [partition, ...])]."""
    out = varint_u(len(topics) + 1)
    for name, parts in topics:
        out += _compact_string(name) + varint_u(len(parts) + 1) + b"".join(struct.pack(">i", p) for p in parts)
        out += b"\x00"
    return out + b"\x00"


def _read_uvarint(frame, pos):
    v = shift = 0
    while True:
        b = frame[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


def parse_describe_producers_response(frame):
    """-> {(topic, partition): (error_code, [(producer_id, epoch, last_sequence, last_timestamp)])}."""
    pos = 4 + 1 + 4  # correlation id, header tagged fields, throttle time
    out = {}
    ntopics, pos = _read_uvarint(frame, pos)
    for _ in range(ntopics - 1):
        n, pos = _read_uvarint(frame, pos)
        topic = frame[pos:pos + n - 1].decode()
        pos += n - 1
        nparts, pos = _read_uvarint(frame, pos)
        for _ in range(nparts - 1):
            part, err = struct.unpack_from(">ih", frame, pos)
            pos += 6
            n, pos = _read_uvarint(frame, pos)  # error message (0: null)
            pos += max(n - 1, 0)
            nprod, pos = _read_uvarint(frame, pos)
            producers = []
            for _ in range(nprod - 1):
                pid, epoch, seq, ts, _coord, _txn = struct.unpack_from(">qiiqiq", frame, pos)
                pos += 36
                _tags, pos = _read_uvarint(frame, pos)
                producers.append((pid, epoch, seq, ts))
            _tags, pos = _read_uvarint(frame, pos)
            out[(topic, part)] = (err, producers)
        _tags, pos = _read_uvarint(frame, pos)
    return out


def delete_records_v1_body(topic, partitions, timeout_ms=5000):
    """DeleteRecords v1: partitions is [(partition, offset)]."""
    out = struct.pack(">i", 1) + string(topic) + struct.pack(">i", len(partitions))
    for p, off in partitions:
        out += struct.pack(">iq", p, off)
    return out + struct.pack(">i", timeout_ms)


def parse_delete_records_v1_response(frame):
    """-> [(partition, low_watermark, error_code)] of the single topic."""
    pos = 4 + 4 + 4  # correlation id, throttle time, topics count (1)
    (tl,) = struct.unpack_from(">h", frame, pos)
    pos += 2 + tl
    (n,) = struct.unpack_from(">i", frame, pos)
    pos += 4
    out = []
    for _ in range(n):
        out.append(struct.unpack_from(">iqh", frame, pos))
        pos += 14
    return out
