"""Tests for dissect.port902.proto.nfc: messages built with struct from protocol.md §5.4-5.5.

Two sessions are rebuilt byte for byte: an nfclib-style file upload (FILE_PUT, FILE_DATA
blocks, the zero-length FILE_DATA that ends the file, PUTFILE_DONE) and a VDDK 8 "nbd"
disk read (classic 43/33/36/51/54/55/52 handshake, then AIO frames, then classic type 4).
"""

from __future__ import annotations

import dataclasses
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissect.port902.proto import nfc
from dissect.port902.proto.nfc import NfcAio, NfcDirection, NfcMessage, NfcWeird, looks_like_nfc

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HANDLE = 0xFFFFFFFF80002A1F
VMDK = b"[datastore1] web01/web01-000001.vmdk"


# ---------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------

def block(msg_type: int, fields: bytes = b"") -> bytes:
    """A classic message: u32 type + fields, zero padded to 264 bytes."""
    return (struct.pack("<I", msg_type) + fields).ljust(nfc.MESSAGE_SIZE, b"\0")


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def file_put(path: str, size: int, file_type: int = 0, conv: int = 1 << 4) -> bytes:
    p = cstr(path)
    return block(1, struct.pack("<IIIQQ", file_type, conv, len(p), size, size)) + p


def file_data(payload: bytes) -> bytes:
    return block(7) + struct.pack("<II", nfc.FILE_DATA_MAGIC, len(payload)) + payload


def aio(aio_type: int, op_id: int, payload: bytes = b"", extra: bytes = b"") -> bytes:
    return struct.pack("<IIII", nfc.AIO_MAGIC, aio_type, len(payload), op_id) + payload + extra


def io(handle: int, op: int, offset: int, total: int, frag_offset: int, frag_len: int,
       wire: int | None = None, compression: int = 0) -> bytes:
    return struct.pack("<QQQIIIII", handle, op | compression << 32, offset, total, frag_offset,
                       frag_len, frag_len if wire is None else wire, 0)


def pattern(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 256 for i in range(n))


def strip(events):
    return [dataclasses.replace(e, ts=0.0, frame=0) for e in events]


def feed_chunks(direction: NfcDirection, stream: bytes, cuts) -> list:
    points = sorted({c for c in cuts if 0 < c < len(stream)})
    events, start = [], 0
    for i, end in enumerate(points + [len(stream)]):
        events += direction.feed(stream[start:end], float(i), i)
        start = end
    return events


def names(events):
    return [e.name if not isinstance(e, NfcWeird) else f"weird:{e.kind}" for e in events]


# nfclib-style upload (protocol.md §11.5)
UPLOAD_BLOCKS = [262144, 262144, 1000]
UPLOAD_CLIENT = (block(43, b"dGhpcyBpcyByYW5kb20=") + file_put("[ds1] iso/tools.iso", sum(UPLOAD_BLOCKS))
                 + b"".join(file_data(pattern(n, i)) for i, n in enumerate(UPLOAD_BLOCKS))
                 + file_data(b"") + block(4))
UPLOAD_SERVER = block(27) + block(4)

# VDDK 8 nbd read of 129 sectors (protocol.md §5.5, §11.4)
OPEN_REQUEST = struct.pack("<IIIIII", len(VMDK), 0, 0, 0, 2, 0x1E) + bytes(36)
OPEN_REPLY = struct.pack("<QQII12xI", 0, HANDLE, 2, 0x1E, 512) + bytes(20)
VDDK_CLIENT = b"".join([
    block(43, b"PlainText"), block(33), block(51, struct.pack("<I", 11)),
    block(54, struct.pack("<II", 4, 7)) + b"vddk" + b"nbdmode",
    block(55, struct.pack("<I", 3)), block(52),
    aio(2, 0, bytes(16)), aio(9, 1, bytes(12)), aio(22, 2, struct.pack("<I", 1)),
    aio(4, 3, OPEN_REQUEST, VMDK),
    aio(11, 4, bytes(16), b"resumeConsolidateSector"),
    aio(7, 5, io(HANDLE, 1, 0, 66048, 0, 66048)),
    aio(5, 6, struct.pack("<Q", HANDLE)), aio(3, 7, struct.pack("<I", 0)), block(4),
])
VDDK_SERVER = b"".join([
    block(36, bytes(12) + struct.pack("<I", 1)), block(51, struct.pack("<I", 11)), block(52),
    aio(2, 0, bytes(16)), aio(9, 1, struct.pack("<III", 262144, 262144, 1)),
    aio(22, 2, struct.pack("<I", 0)), aio(4, 3, OPEN_REPLY), aio(11, 4, bytes(16)),
    aio(7, 5, io(0, 1, 0, 66048, 0, 65536), pattern(65536)),
    aio(7, 5, io(0, 1, 0, 66048, 65536, 512), pattern(512, 3)),
    aio(5, 6, bytes(8)), aio(3, 7, bytes(4)), block(4),
])
VDDK_CLIENT_NAMES = [
    "NFC_CLIENTRANDOM", "NFC_FILE_COPY", "NFC_VERSION", "NFC_CONNECTION_DATA",
    "NFC_SESSION_FEATURES", "NFC_AIO_SESSION_OPEN", "OPEN_SESSION", "SET_SOCK_OPTS",
    "SET_RES_POOL", "OPEN_FILE", "DDB_GET", "IO", "CLOSE_FILE", "CLOSE_SESSION",
    "NFC_SESSION_COMPLETE"]
VDDK_SERVER_NAMES = [
    "NFC_FILEOP_STATUS", "NFC_VERSION", "NFC_AIO_SESSION_OPEN", "OPEN_SESSION", "SET_SOCK_OPTS",
    "SET_RES_POOL", "OPEN_FILE", "DDB_GET", "IO", "IO", "CLOSE_FILE", "CLOSE_SESSION",
    "NFC_SESSION_COMPLETE"]


# ---------------------------------------------------------------------------------------------
# tables and detection
# ---------------------------------------------------------------------------------------------

def test_tables():
    assert nfc.MESSAGE_TYPES[7] == "NFC_FILE_DATA" and nfc.MESSAGE_TYPES[43] == "NFC_CLIENTRANDOM"
    assert set(nfc.MESSAGE_TYPES) <= set(range(56)) and 35 not in nfc.MESSAGE_TYPES
    assert nfc.AIO_TYPES[7] == "IO" and nfc.AIO_TYPES[4] == "OPEN_FILE"
    assert nfc.FILE_TYPES[2] == "NFC_DISK"
    assert nfc.AIO_MAGIC_BYTES == b"\x7a\xda\x00\xa1"
    assert nfc.FILE_PUT.size == 45 and nfc.AIO_IO.size == 44 and nfc.AIO_HEADER.size == 16


@pytest.mark.parametrize("data", [
    block(43, b"PlainText")[:8], block(43, b"PlainText"), block(33), block(52),
    file_put("[ds] a.vmx", 10), block(2, struct.pack("<II", 2, 12)), block(51, struct.pack("<I", 11)),
    block(54, struct.pack("<II", 4, 7)), block(36, bytes(12) + b"\x01"),
    block(20, struct.pack("<III", 1, 5, 40)),
    aio(2, 0, bytes(16)), nfc.AIO_MAGIC_BYTES, block(0, b"\x01secret"), block(23, struct.pack("<I", 1)),
])
def test_looks_like_nfc_yes(data):
    assert looks_like_nfc(data)


@pytest.mark.parametrize("data", [
    b"", b"\x2b\x00\x00\x00", b"\x16\x03\x01\x00\xc0\x01\x00\x00", b"\x17\x03\x03\x00\x20abc",
    b"220 VMware Authentication Daemon", b"RFB 003.008\n", block(35), block(9), block(53),
    block(51, struct.pack("<I", 0)), block(43), block(43, b"\x01\x02binary"), block(33, b"\x01"),
    block(1, struct.pack("<I", 99)), block(0), aio(99, 0), block(54, struct.pack("<II", 99999, 1)),
    block(2, struct.pack("<II", 2, 0)), block(23, struct.pack("<I", 7)),
])
def test_looks_like_nfc_no(data):
    assert not looks_like_nfc(data)


# ---------------------------------------------------------------------------------------------
# classic file copy
# ---------------------------------------------------------------------------------------------

def test_upload_session():
    client = NfcDirection("client")
    events = client.feed(UPLOAD_CLIENT, 1.0, 10)
    assert names(events) == ["NFC_CLIENTRANDOM", "NFC_FILE_PUT"] + ["NFC_FILE_DATA"] * 4 + [
        "NFC_SESSION_COMPLETE"]
    token, put, *data, done = events
    assert token.fields == {"token": "dGhpcyBpcyByYW5kb20="} and token.extra_len == 0
    assert put.fields["path"] == "[ds1] iso/tools.iso"
    assert put.fields["file_type"] == "NFC_RAW" and put.fields["file_size"] == sum(UPLOAD_BLOCKS)
    assert put.fields["conversion"] == ["CREATE_OVERWRITE"]
    assert put.extra_len == len(cstr("[ds1] iso/tools.iso"))
    assert [d.fields["data_length"] for d in data] == UPLOAD_BLOCKS + [0]
    assert [d.extra_len for d in data] == [8 + n for n in UPLOAD_BLOCKS] + [8]
    assert all(isinstance(e, NfcMessage) and (e.ts, e.frame) == (1.0, 10) for e in events)
    assert client.messages == 7 and client.aio_frames == 0 and not client.aio
    assert client.data_bytes == sum(UPLOAD_BLOCKS)
    assert client.message_types == {"NFC_CLIENTRANDOM": 1, "NFC_FILE_PUT": 1, "NFC_FILE_DATA": 4,
                                    "NFC_SESSION_COMPLETE": 1}
    server = NfcDirection("server")
    assert names(server.feed(UPLOAD_SERVER, 2.0, 20)) == ["NFC_PUTFILE_DONE", "NFC_SESSION_COMPLETE"]
    assert client.finish(3.0, 30) == [] and server.finish(3.0, 30) == []


def test_download_reply_with_parent_path_and_sesparse_grain():
    conv = 1 << 14 | 1 << 2
    fixed = struct.pack("<IIIQQIIBI", 2, conv, 6, 4096, 4096, 5, 0, 1, 3)
    stream = block(1, fixed) + b"a.vmdk" + b"p.vmd" + b"pol" + bytes(32) + file_data(b"x" * 10)
    events = NfcDirection("server").feed(stream, 0.0, 0)
    put, data = events
    assert put.fields["path"] == "a.vmdk" and put.fields["parent_path"] == "p.vmd"
    assert put.fields["storage_policy"] == "pol" and put.fields["is_passthrough"] == 1
    assert put.fields["file_type"] == "NFC_DISK" and "DSK_SESPARSE" in put.fields["conversion"]
    assert put.extra_len == 6 + 5 + 3 + 32 and data.fields["data_length"] == 10


def test_other_classic_messages():
    text = "Failed to allocate the requested 2097176 bytes " * 10
    names_blob = b"[ds] a.vmdk\0[ds] b.vmdk\0\0"
    client = (block(2, struct.pack("<III", 2, 11, 0)) + cstr("[ds] x.vmdk"[:10])
              + block(31, struct.pack("<IIH", len(names_blob), 0, 2)) + names_blob
              + block(34, struct.pack("<IIH", 8, 2, 1)) + cstr("[ds] d1")
              + block(21, struct.pack("<IIB", 5, 0x0A, 0)) + cstr("[ds]")
              + block(23, struct.pack("<IQI", 1, 4096, 512)) + pattern(512)
              + block(23, struct.pack("<IQI", 0, 0, 1024))
              + block(8) + block(55, struct.pack("<I", 3)))
    events = NfcDirection("client").feed(client, 0.0, 0)
    get, delete, mkdir, fs_open, write, read_req, ping, features = events
    assert get.fields["path"] == "[ds] x.vmd" and get.fields["file_type"] == "NFC_DISK"
    assert delete.fields["names"] == ["[ds] a.vmdk", "[ds] b.vmdk"] and delete.fields["count"] == 2
    assert mkdir.fields["path"] == "[ds] d1" and mkdir.fields["flags"] == 2
    assert fs_open.fields == {"path_len": 5, "open_flags": 10, "raw_file": 0, "path": "[ds]"}
    assert (write.fields["direction"], write.fields["offset"], write.extra_len) == ("write", 4096, 512)
    assert (read_req.fields["direction"], read_req.extra_len) == ("read", 0)
    assert ping.name == "NFC_PING" and features.fields == {"features": 3}
    server = (block(20, struct.pack("<III", 1, 5, len(text) + 1)) + cstr(text)
              + block(36, struct.pack("<IIHH", 4, 3, 1, 1)) + b"\x00\x00\xff\xff" + b"abc"
              + block(23, struct.pack("<IQI", 1, 4096, 512))
              + block(23, struct.pack("<IQI", 0, 0, 1024)) + pattern(1024)
              + block(22) + block(24))
    events = NfcDirection("server").feed(server, 0.0, 0)
    error, status, write_ack, read_reply, geo, close = events
    assert error.fields["error_code"] == 5 and len(error.fields["text"]) == 256
    assert error.fields["text"].startswith("Failed to allocate") and error.extra_len == len(text) + 1
    assert status.fields["error_size"] == 4 and status.extra_len == 7
    assert write_ack.extra_len == 0 and read_reply.extra_len == 1024
    assert (geo.name, close.name) == ("NFC_FSSRVR_DISKGEO", "NFC_FSSRVR_CLOSE")


# ---------------------------------------------------------------------------------------------
# VDDK 8: classic handshake, then AIO
# ---------------------------------------------------------------------------------------------

def test_vddk_read_session_client():
    d = NfcDirection("client")
    events = d.feed(VDDK_CLIENT, 1.5, 3)
    assert names(events) == VDDK_CLIENT_NAMES
    by_name = {e.name: e for e in events}
    assert by_name["NFC_CLIENTRANDOM"].fields["token"] == "PlainText"
    assert by_name["NFC_VERSION"].fields == {"version": 11}
    conn = by_name["NFC_CONNECTION_DATA"]
    assert conn.fields["client_name"] == "vddk" and conn.fields["op_id"] == "nbdmode"
    assert conn.extra_len == 11
    open_file = by_name["OPEN_FILE"]
    assert isinstance(open_file, NfcAio) and open_file.size == 60 and open_file.op_id == 3
    assert open_file.fields["path"] == VMDK.decode() and open_file.extra_len == len(VMDK)
    assert open_file.fields["flags"] == 0x1E and open_file.fields["file_type"] == "NFC_DISK"
    ddb = by_name["DDB_GET"]
    assert ddb.fields["extra"] == "resumeConsolidateSector" and ddb.extra_len == 23
    read = by_name["IO"]
    assert read.fields["op"] == "read" and read.fields["total_length"] == 66048
    assert read.fields["handle"] == HANDLE and read.extra_len == 0 and read.op_id == 5
    assert by_name["SET_RES_POOL"].fields == {"words": [1]}
    assert by_name["CLOSE_FILE"].fields == {"handle": HANDLE}
    assert d.messages == 7 and d.aio_frames == 8 and d.aio and d.data_bytes == 0
    assert d.message_types["IO"] == 1


def test_vddk_read_session_server():
    d = NfcDirection("server")
    events = d.feed(VDDK_SERVER, 0.0, 0)
    assert names(events) == VDDK_SERVER_NAMES
    status = events[0]
    assert status.fields["error_size"] == 0 and status.extra_len == 0
    reply = next(e for e in events if e.name == "OPEN_FILE")
    assert reply.fields["handle"] == HANDLE and reply.fields["sector_size"] == 512
    assert reply.extra_len == 0
    assert next(e for e in events if e.name == "DDB_GET").extra_len == 0
    fragments = [e for e in events if e.name == "IO"]
    assert [(f.fields["fragment_offset"], f.fields["fragment_length"], f.extra_len)
            for f in fragments] == [(0, 65536, 65536), (65536, 512, 512)]
    assert all(f.op_id == 5 and f.fields["op"] == "read" for f in fragments)
    assert d.data_bytes == 66048 and d.aio_frames == 9 and d.messages == 4
    assert next(e for e in events if e.name == "SET_SOCK_OPTS").fields["words"] == [262144, 262144, 1]


def test_vddk_write_and_errors():
    client = (aio(7, 14, io(HANDLE, 0, 0, 66048, 0, 65536), pattern(65536))
              + aio(7, 14, io(HANDLE, 0, 0, 66048, 65536, 512), pattern(512))
              + aio(7, 15, io(HANDLE, 0, 1 << 20, 4096, 0, 4096, wire=100, compression=2), bytes(100)))
    events = NfcDirection("client").feed(client, 0.0, 0)
    assert [e.extra_len for e in events] == [65536, 512, 100]
    assert events[2].fields["compression"] == "fastlz" and events[2].fields["wire_length"] == 100
    server = (aio(7, 14, io(0, 0, 0, 66048, 0, 66048))
              + aio(1, 16, struct.pack("<QII", 3, 0, 17), b"Failed to open...")
              + aio(4, 16, bytes(60)))
    d = NfcDirection("server")
    ack, error, refused = d.feed(server, 0.0, 0)
    assert ack.extra_len == 0 and ack.fields["fragment_length"] == 66048
    assert error.name == "ERROR" and error.fields == {"code": 3, "text": "Failed to open..."}
    assert error.extra_len == 17 and refused.extra_len == 0 and d.data_bytes == 0


def test_without_role_the_same_events_are_found():
    for stream, role in ((VDDK_CLIENT, "client"), (VDDK_SERVER, "server"),
                         (UPLOAD_CLIENT, "client")):
        learnt = NfcDirection()
        assert learnt.feed(stream, 0.0, 0) == NfcDirection(role).feed(stream, 0.0, 0)
    learnt = NfcDirection()
    learnt.feed(VDDK_CLIENT, 0.0, 0)
    assert learnt.role == "client"
    learnt = NfcDirection()
    learnt.feed(VDDK_SERVER, 0.0, 0)
    assert learnt.role == "server"
    with pytest.raises(ValueError):
        NfcDirection("both")


@FUZZ
@given(cuts=st.lists(st.integers(min_value=1, max_value=70000), max_size=30))
def test_chunking_does_not_change_events(cuts):
    for stream, role in ((VDDK_CLIENT, "client"), (VDDK_SERVER, "server"),
                         (UPLOAD_CLIENT, "client")):
        whole = NfcDirection(role)
        expected = whole.feed(stream, 0.0, 0)
        split = NfcDirection(role)
        assert strip(feed_chunks(split, stream, cuts)) == strip(expected)
        assert (split.data_bytes, split.messages, split.aio_frames) == (
            whole.data_bytes, whole.messages, whole.aio_frames)


def test_byte_by_byte_equals_whole():
    stream = VDDK_CLIENT + aio(7, 9, io(HANDLE, 0, 0, 512, 0, 512), pattern(512))
    whole = NfcDirection("client").feed(stream, 0.0, 0)
    d = NfcDirection("client")
    assert [e for i in range(len(stream)) for e in d.feed(stream[i:i + 1], 0.0, 0)] == whole
    assert d.data_bytes == 512


def test_event_time_is_that_of_the_first_byte():
    stream = block(43, b"PlainText") + aio(2, 0, bytes(16))
    d = NfcDirection("client")
    events = d.feed(stream[:10], 1.0, 1) + d.feed(stream[10:270], 2.0, 2) + d.feed(stream[270:], 3.0, 3)
    assert [(e.name, e.ts, e.frame) for e in events] == [("NFC_CLIENTRANDOM", 1.0, 1),
                                                         ("OPEN_SESSION", 2.0, 2)]


def test_file_data_uses_constant_memory():
    chunk = file_data(bytes(262144)) * 4  # 1 MiB of FILE_DATA messages
    d = NfcDirection("client")
    d.feed(chunk, 0.0, 0)
    tracemalloc.start()
    try:
        for i in range(12):
            d.feed(chunk, float(i), i)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.data_bytes == 52 * 262144 and d.messages == 52
    assert peak < 512 * 1024


# ---------------------------------------------------------------------------------------------
# nonsense, gaps, resync, truncation
# ---------------------------------------------------------------------------------------------

def test_unknown_message_type_resyncs_on_next_aio_header():
    stream = b"\x99\x00\x00\x00junk junk" + aio(2, 0, bytes(16))
    events = NfcDirection("client").feed(stream, 0.0, 0)
    assert names(events) == ["weird:unknown_message_type", "weird:resync", "OPEN_SESSION"]
    assert "skipped 12 bytes" in events[1].detail


def test_unknown_aio_type_resyncs():
    stream = aio(99, 1, b"????") + b"garbage" + aio(3, 2, bytes(4))
    events = NfcDirection("client").feed(stream, 0.0, 0)
    assert names(events) == ["weird:unknown_aio_type", "weird:resync", "CLOSE_SESSION"]


def test_resync_finds_a_file_data_block():
    stream = b"\xff" * 10 + file_data(b"abc") + block(4)
    events = NfcDirection("client").feed(stream, 0.0, 0)
    assert names(events) == ["weird:unknown_message_type", "weird:resync", "NFC_FILE_DATA",
                             "NFC_SESSION_COMPLETE"]


def test_bad_file_data_magic_and_implausible_lengths():
    bad = block(7) + struct.pack("<II", 0x12345678, 10) + b"0123456789" + block(4)
    events = NfcDirection("client").feed(bad, 0.0, 0)
    assert names(events)[:2] == ["NFC_FILE_DATA", "weird:bad_file_data"]
    huge = block(1, struct.pack("<IIIQQ", 0, 0, 10**9, 1, 1))
    assert names(NfcDirection("client").feed(huge, 0.0, 0)) == ["weird:implausible_length"]
    big_aio = aio(4, 0, bytes(8))[:8] + struct.pack("<II", 100000, 0)
    assert names(NfcDirection().feed(big_aio, 0.0, 0)) == ["weird:implausible_length"]
    open_huge = aio(4, 1, struct.pack("<I", 10**7) + bytes(56)) + aio(3, 2, bytes(4))
    assert names(NfcDirection("client").feed(open_huge, 0.0, 0)) == [
        "OPEN_FILE", "weird:implausible_length", "weird:resync", "CLOSE_SESSION"]
    short_io = aio(7, 1, bytes(8)) + aio(3, 2, bytes(4))
    assert names(NfcDirection("client").feed(short_io, 0.0, 0)) == [
        "IO", "weird:short_aio_io", "weird:resync", "CLOSE_SESSION"]


def test_gap_inside_file_data_is_only_counted():
    stream = file_data(pattern(5000)) + block(4)
    d = NfcDirection("client")
    events = d.feed(stream[:1000], 0.0, 0) + d.gap(3000, 1.0, 1) + d.feed(stream[4000:], 2.0, 2)
    assert names(events) == ["NFC_FILE_DATA", "NFC_SESSION_COMPLETE"]
    assert d.bytes_lost == 3000 and d.data_bytes == 2000 and d.gap(0, 0.0, 0) == []
    with pytest.raises(ValueError):
        d.gap(-5, 0.0, 0)


def test_gap_across_messages_resyncs():
    stream = file_data(pattern(1000)) + file_data(pattern(2000)) + aio(2, 0, bytes(16))
    d = NfcDirection("client")
    events = d.feed(stream[:100], 0.0, 0) + d.gap(1500, 1.0, 1)
    events += d.feed(stream[1600:1700], 2.0, 2) + d.gap(5, 2.5, 2) + d.feed(stream[1705:], 3.0, 3)
    assert names(events) == ["weird:gap_desync", "weird:resync", "OPEN_SESSION"]
    d = NfcDirection("client")
    d.feed(block(43, b"PlainText")[:100], 0.0, 0)
    assert "message header" in d.gap(10, 1.0, 1)[0].detail


def test_gap_in_captured_extra_emits_the_message_first():
    stream = file_put("[ds] long/path.vmdk", 1)
    d = NfcDirection("client")
    events = d.feed(stream[:270], 0.0, 0) + d.gap(5, 1.0, 1)
    assert names(events) == ["NFC_FILE_PUT", "weird:gap_desync"]
    assert events[0].fields["path"] == "[ds] l"  # the 6 bytes that arrived


def test_scan_delimited_extra_and_finish():
    d = NfcDirection("client")
    assert d.feed(aio(11, 4, bytes(16), b"iofilters"), 0.0, 0) == []  # extra runs to next header
    flushed = d.finish(1.0, 1)
    assert names(flushed) == ["DDB_GET"] and flushed[0].fields["extra"] == "iofilters"
    d = NfcDirection("client")
    events = d.feed(aio(11, 4, bytes(16)) + b"A" * 70000, 0.0, 0)
    assert names(events) == ["DDB_GET", "weird:unterminated_extra"]
    assert d.feed(aio(3, 5, bytes(4)), 1.0, 1)[-1].name == "CLOSE_SESSION"


def test_finish_reports_truncation():
    d = NfcDirection("client")
    d.feed(block(43, b"PlainText")[:100], 0.0, 0)
    assert d.finish(1.0, 1)[0].kind == "truncated"
    d = NfcDirection("client")
    d.feed(file_data(bytes(100))[:300], 0.0, 0)
    assert names(d.finish(1.0, 1)) == ["weird:truncated"]
    d = NfcDirection("client")
    d.feed(file_put("[ds] x", 1)[:266], 0.0, 0)
    assert names(d.finish(1.0, 1)) == ["NFC_FILE_PUT", "weird:truncated"]
    d = NfcDirection()
    d.feed(b"\xee" * 8, 0.0, 0)
    assert d.finish(1.0, 1)[0].detail == "stream ended while resynchronising"
    assert NfcDirection().finish(0.0, 0) == []


# ---------------------------------------------------------------------------------------------
# fuzz
# ---------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=400))
def test_looks_like_nfc_never_raises(data):
    assert looks_like_nfc(data) in (True, False)


@FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=10),
       role=st.sampled_from([None, "client", "server"]),
       gaps=st.lists(st.integers(min_value=0, max_value=600), max_size=10),
       start=st.sampled_from([b"", nfc.AIO_MAGIC_BYTES, b"\x07\x00\x00\x00", b"\x01\x00\x00\x00"]))
def test_feed_never_raises(chunks, role, gaps, start):
    d = NfcDirection(role)
    for i, chunk in enumerate(chunks):
        d.feed(start + chunk if i == 0 else chunk, float(i), i)
        if i < len(gaps):
            d.gap(gaps[i], float(i), i)
    d.finish(9.0, 9)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0, max_value=80000), st.integers(1, 255)),
                      min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=1, max_value=80000), max_size=8))
def test_feed_never_raises_on_damaged_sessions(flips, cuts):
    for stream, role in ((VDDK_SERVER, "server"), (VDDK_CLIENT, None), (UPLOAD_CLIENT, "client")):
        damaged = bytearray(stream)
        for at, xor in flips:
            damaged[at % len(damaged)] ^= xor
        d = NfcDirection(role)
        feed_chunks(d, bytes(damaged), cuts)
        d.finish(0.0, 0)


# ---------------------------------------------------------------------------------------------
# corners
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (block(21, struct.pack("<I", 12)), True), (block(21, struct.pack("<I", 0)), False),
    (block(34, struct.pack("<I", 9)), True), (block(31, struct.pack("<I", 20)), True),
    (block(32, struct.pack("<I", 10**6)), False), (block(55, struct.pack("<I", 3)), True),
    (block(55, struct.pack("<I", 1 << 20)), False), (block(22, b"geometry"), True),
])
def test_looks_like_nfc_field_checks(data, expected):
    assert looks_like_nfc(data) is expected


def test_aio_corner_frames():
    d = NfcDirection("client")
    events = d.feed(aio(3, 1) + aio(4, 2, bytes(8)) + aio(1, 3, bytes(4)), 0.0, 0)
    assert [(e.name, e.size, e.fields, e.extra_len) for e in events] == [
        ("CLOSE_SESSION", 0, {}, 0), ("OPEN_FILE", 8, {}, 0), ("ERROR", 4, {}, 0)]
    events = NfcDirection("server").feed(aio(1, 4, struct.pack("<QII", 1, 0, 10**6)), 0.0, 0)
    assert names(events) == ["ERROR", "weird:implausible_length"]
    events = NfcDirection("client").feed(
        aio(7, 5, io(HANDLE, 0, 0, 1, 0, 10**8)) + aio(3, 6, bytes(4)), 0.0, 0)
    assert names(events) == ["IO", "weird:implausible_length", "weird:resync", "CLOSE_SESSION"]
    events = NfcDirection("client").feed(block(23, struct.pack("<IQI", 1, 0, 10**9)), 0.0, 0)
    assert names(events) == ["weird:implausible_length"]


def test_io_direction_guessed_from_the_handle_without_role():
    d = NfcDirection()
    reply = d.feed(aio(7, 1, io(0, 1, 0, 512, 0, 512), pattern(512)), 0.0, 0)
    assert reply[0].extra_len == 512 and d.role is None  # zero handle: a server read reply
    request = d.feed(aio(7, 2, io(HANDLE, 0, 0, 512, 0, 512), pattern(512)), 0.0, 0)
    assert request[0].extra_len == 512 and d.role == "client"  # a handle: a client write


def test_gap_while_scanning_an_extra():
    d = NfcDirection("client")
    d.feed(aio(11, 4, bytes(16), b"isDig"), 0.0, 0)
    events = d.gap(3, 1.0, 1)
    assert names(events) == ["DDB_GET", "weird:gap_desync"]
    assert events[0].fields["extra"] == "is" and events[0].extra_len == 2


def test_resync_ignores_false_candidates():
    fake_aio = nfc.AIO_MAGIC_BYTES + struct.pack("<III", 99, 0, 0)  # magic, unknown type
    fake_data = b"\x08".ljust(264, b"\0") + struct.pack("<I", nfc.FILE_DATA_MAGIC)  # not type 7
    stream = b"\xee" * 4 + fake_aio + fake_data + aio(2, 0, bytes(16)) + file_data(b"z")
    events = NfcDirection("client").feed(stream, 0.0, 0)
    assert names(events) == ["weird:unknown_message_type", "weird:resync", "OPEN_SESSION",
                             "NFC_FILE_DATA"]
    assert "skipped 287 bytes" in events[1].detail
