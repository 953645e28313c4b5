"""NFC messages (264-byte blocks, AIO frames, FILE_DATA) and the transfer dialogues that use them.

Why: after ``200 Connect ha-nfc`` the NFC stream runs in clear on the same TCP connection (VDDK
"nbd"), so a dissector can read it outright; after ``ha-nfcssl`` the same bytes travel inside
TLS #2. Layouts follow protocol.md §5.4 (classic messages, little-endian, variable data after
the 264 bytes), §5.5 (VDDK 8: classic handshake, then 16-byte AIO headers with magic
``7a da 00 a1``, reads answered in ≤ 64 KiB fragments) and §11.5 (nfclib upload with
``{0xABCDEFAB, len}`` FILE_DATA headers, ≤ 256 KiB each, zero-length end marker).

Reply layouts the sources leave open (SET_RES_POOL, CLOSE_* replies, DDB_GET request fields)
are the lab's model: the request's payload size echoed with zeros.
"""

from __future__ import annotations

import random
import struct

from .channel import CLIENT, SERVER, Step
from .pace import Pace

MSG_SIZE = 264
# classic types (§5.4, §5.5)
FILE_PUT, SESSION_COMPLETE, FILE_DATA, PUTFILE_DONE = 1, 4, 7, 27
CLIENTRANDOM, FILE_COPY, FILEOP_STATUS = 43, 33, 36
VERSION, OPID, FEATURES, READY = 51, 54, 55, 52            # names for 51-55 are inferred (§5.5)
FILE_TYPE_RAW, FILE_TYPE_DISK = 0, 2
CREATE_OVERWRITE = 1 << 4
FILE_MAGIC = 0xABCDEFAB
MAX_XFER = 262144
# AIO (§5.5)
AIO_MAGIC = 0xA100DA7A
AIO_ERROR, AIO_OPEN_SESSION, AIO_CLOSE_SESSION, AIO_OPEN_FILE, AIO_CLOSE_FILE = 1, 2, 3, 4, 5
AIO_IO, AIO_SET_SOCK_OPTS, AIO_DDB_GET, AIO_SET_RES_POOL = 7, 9, 11, 22
AIO_FRAGMENT = 65536
SECTOR = 512
OPEN_READ_ONLY = 0x1E
ESXI8_NFC_VERSION = 11


def message(kind: int, fields: bytes = b"") -> bytes:
    """A classic 264-byte NFC message: u32 type, type-specific fields, zero padding."""
    return struct.pack("<I", kind) + fields + b"\0" * (MSG_SIZE - 4 - len(fields))


def aio(kind: int, op_id: int, payload: bytes, extra: bytes = b"") -> bytes:
    """An AIO frame: {magic, type, payload size, opId} + payload + uncounted extra bytes."""
    return struct.pack("<IIII", AIO_MAGIC, kind, len(payload), op_id) + payload + extra


def file_put(path: str, size: int, file_type: int = FILE_TYPE_RAW, flags: int = CREATE_OVERWRITE) -> bytes:
    """NFC_FILE_PUT announcing ``path`` (NUL-terminated, after the 264 bytes)."""
    raw = path.encode() + b"\0"
    return message(FILE_PUT, struct.pack("<IIIQQ", file_type, flags, len(raw), size, size)) + raw


def file_data(data: bytes) -> bytes:
    """NFC_FILE_DATA: 264 bytes, {0xABCDEFAB, len}, data (empty data marks end of file)."""
    return message(FILE_DATA) + struct.pack("<II", FILE_MAGIC, len(data)) + data


def io_request(handle: int, offset: int, length: int) -> bytes:
    """AIO IO payload (44 bytes) for a read of ``length`` bytes at ``offset``."""
    return struct.pack("<QQQIIIII", handle, 1, offset, length, 0, 0, 0, 0)


def io_fragment(handle: int, offset: int, total: int, frag_offset: int, data: bytes) -> bytes:
    """AIO IO payload describing one reply fragment carrying ``data``."""
    return struct.pack("<QQQIIIII", handle, 1, offset, total, frag_offset, len(data), len(data), 0)


def disk_bytes(rng: random.Random, size: int, sparse: float = 0.3) -> bytes:
    """Disk content: random 64 KiB extents with a ``sparse`` share of zero extents."""
    out = bytearray()
    while len(out) < size:
        n = min(AIO_FRAGMENT, size - len(out))
        out += bytes(n) if rng.random() < sparse else rng.randbytes(n)
    return bytes(out)


def vddk_handshake(pace: Pace, version: int = ESXI8_NFC_VERSION) -> list[Step]:
    """Classic handshake of a VDDK 8 disk session (§5.5): 43, 33, ←36, 51, ←51, 54, 55, 52, ←52."""
    return [
        Step(CLIENT, message(CLIENTRANDOM, b"PlainText"), pace("program"), "nfc_first_message"),
        Step(CLIENT, message(FILE_COPY), pace("program")),
        Step(SERVER, message(FILEOP_STATUS, b"\0" * 12 + struct.pack("<I", 1)), pace("reply")),
        Step(CLIENT, message(VERSION, struct.pack("<I", version)), pace("program")),
        Step(SERVER, message(VERSION, struct.pack("<I", version)), pace("reply")),
        Step(CLIENT, message(OPID, struct.pack("<II", 4, 7)) + b"vddk" + b"nbdmode", pace("program")),
        Step(CLIENT, message(FEATURES, struct.pack("<I", 3)), pace("program")),
        Step(CLIENT, message(READY), pace("program")),
        Step(SERVER, message(READY), pace("reply")),
    ]


def vddk_read(pace: Pace, rng: random.Random, disk: str, size: int, io_size: int = 262144,
              ddb_keys: tuple[str, ...] = ("geometry.biosCylinders",)) -> list[Step]:
    """A VDDK AIO disk read of ``size`` bytes from ``disk`` after ``vddk_handshake`` (§5.5).

    OPEN_SESSION, SET_SOCK_OPTS, SET_RES_POOL, OPEN_FILE, DDB_GETs, IO reads of ``io_size``
    answered in ≤ 64 KiB fragments, CLOSE_FILE, CLOSE_SESSION, classic SESSION_COMPLETE.
    Marks ``aio_open_session``, ``aio_open_file``, ``aio_first_read``, ``aio_close_session``.
    """
    handle = rng.getrandbits(32) | 0x10000
    op = iter(range(1 << 30))
    steps: list[Step] = []

    def call(kind: int, payload: bytes, reply: bytes, extra: bytes = b"", mark: str | None = None,
             work: str = "reply") -> None:
        op_id = next(op)
        steps.append(Step(CLIENT, aio(kind, op_id, payload, extra), pace("program"), mark))
        steps.append(Step(SERVER, aio(kind, op_id, reply), pace(work)))

    call(AIO_OPEN_SESSION, bytes(16), bytes(16), mark="aio_open_session")
    call(AIO_SET_SOCK_OPTS, bytes(12), struct.pack("<III", 1 << 20, 1 << 20, 1))
    call(AIO_SET_RES_POOL, struct.pack("<I", 1), bytes(4))
    path = disk.encode()
    call(AIO_OPEN_FILE, struct.pack("<I12xII36x", len(path), FILE_TYPE_DISK, OPEN_READ_ONLY),
         struct.pack("<8xQII12xI20x", handle, FILE_TYPE_DISK, OPEN_READ_ONLY, SECTOR), extra=path,
         mark="aio_open_file", work="disk_io")
    for key in ddb_keys:
        call(AIO_DDB_GET, struct.pack("<QI4x", handle, len(key)), bytes(16), extra=key.encode())
    content = disk_bytes(rng, size)
    for offset in range(0, size, io_size):
        op_id = next(op)
        length = min(io_size, size - offset)
        steps.append(Step(CLIENT, aio(AIO_IO, op_id, io_request(handle, offset, length)), pace("program"),
                          "aio_first_read" if offset == 0 else None))
        fragments = []
        for frag in range(0, length, AIO_FRAGMENT):
            data = content[offset + frag: offset + min(length, frag + AIO_FRAGMENT)]
            fragments.append(aio(AIO_IO, op_id, io_fragment(handle, offset, length, frag, data), data))
        steps.append(Step(SERVER, tuple(fragments), pace("disk_io")))
    call(AIO_CLOSE_FILE, struct.pack("<Q", handle), bytes(8))
    call(AIO_CLOSE_SESSION, bytes(4), bytes(4), mark="aio_close_session")
    steps.append(Step(CLIENT, message(SESSION_COMPLETE), pace("program"), "nfc_session_complete"))
    return steps


def nfclib_upload(pace: Pace, rng: random.Random, path: str, size: int, token: str = "PlainText") -> list[Step]:
    """nfclib-style file upload after the handoff (§11.5), marks ``nfc_first_message`` …

    CLIENTRANDOM(token), FILE_PUT + path, FILE_DATA chunks ≤ 256 KiB, zero FILE_DATA,
    ←PUTFILE_DONE, SESSION_COMPLETE, ←SESSION_COMPLETE.
    """
    content = disk_bytes(rng, size, sparse=0.0)
    steps = [
        Step(CLIENT, message(CLIENTRANDOM, token.encode()), pace("program"), "nfc_first_message"),
        Step(CLIENT, file_put(path, size), pace("program"), "nfc_file_put"),
    ]
    for offset in range(0, size, MAX_XFER):
        steps.append(Step(CLIENT, file_data(content[offset: offset + MAX_XFER]), pace("program")))
    steps += [
        Step(CLIENT, file_data(b""), pace("program"), "nfc_end_of_file"),
        Step(SERVER, message(PUTFILE_DONE), pace("disk_io"), "nfc_putfile_done"),
        Step(CLIENT, message(SESSION_COMPLETE), pace("program"), "nfc_session_complete"),
        Step(SERVER, message(SESSION_COMPLETE), pace("reply")),
    ]
    return steps
