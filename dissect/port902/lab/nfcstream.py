"""NFC transfers of any size, generated lazily: VDDK block I/O both ways, classic FSSRVR I/O,
nfclib / photon file and disk uploads *and downloads* (``NFC_FILE_GET``).

Why: NFC sessions in the field run from a few kilobytes (a ``.vmx`` or ``.nvram`` copied during
a clone) to hundreds of gigabytes (a full backup), in both directions (backup reads, restore
writes, image uploads, ISO / disk downloads). ``nfc.py`` builds the bundled samples' small
transfers as lists; the functions here are *generators* of ``channel.Step`` that produce each
message when it is sent and draw content one 64 KiB extent at a time, so memory stays bounded
whatever the size (the TCP side streams too, see ``netem.EmuTcp``).

Wire layouts (protocol.md §5.4, §5.5, §11.4, §11.5):

* ``vddk_io``    — VDDK 8 AIO after the classic handshake: OPEN_SESSION, SET_SOCK_OPTS,
  SET_RES_POOL, OPEN_FILE (``0x1e`` read-only / ``0x1a`` read-write), DDB_GETs, then IO:
  reads are one 44-byte request answered by fragments of ≤ 64 KiB; writes are client fragments
  of ≤ 64 KiB sharing the opId, answered by one 44-byte ack. ``io_size`` 64 KiB-1 MiB,
  ``queue_depth`` 1 (lockstep) or 2, sequential or changed-block (scattered) offsets, sparse
  extents sent as zeros.
* ``fssrvr_io``  — classic FSSRVR disk access (photon ``NfcClient``): FSSRVR_OPEN + path →
  DISKGEO; IO requests {u32 direction @4, u64 byte offset @8, u32 length @16} (+ data for
  writes) → 264-byte IO replies (+ data for reads — the read reply layout is the lab's model);
  FSSRVR_CLOSE ↔; SESSION_COMPLETE ↔.
* ``file_put`` / ``file_get`` — nfclib / photon transfers: FILE_PUT + path, FILE_DATA
  {0xABCDEFAB, len} chunks ≤ 256 KiB, zero-length FILE_DATA, ←PUTFILE_DONE; or FILE_GET + path,
  ←FILE_PUT describing the file, ←FILE_DATA stream, ←zero-length FILE_DATA. Files are RAW or
  DISK; disks travel in photon's disk encoding (section header 0x87654321, DDB entries
  0xDEADBEEF, run-length records 0x12345678 with bit 15 = data sectors follow).
  SESSION_COMPLETE ↔ ends the session. nfclib sends NFC_CLIENTRANDOM first; photon does not.
"""

from __future__ import annotations

import random
import struct
from typing import Iterator

from . import nfc
from .channel import CLIENT, SERVER, Step
from .pace import Pace

EXTENT = 65536
FSSRVR_OPEN, FSSRVR_DISKGEO, FSSRVR_IO, FSSRVR_CLOSE, FILE_GET = 21, 22, 23, 24, 2
OPEN_READ_WRITE = 0x1A
PHOTON_XFER = 256 * 1024 - nfc.MSG_SIZE          # photon: FILE_DATA buffer incl. the 264-byte header
DSK_HDR, DDB_ENTRY, RLE_HDR, RLE_DATA, RLE_MAX = 0x87654321, 0xDEADBEEF, 0x12345678, 0x8000, 0x7FFF
CONV_DISK_VMFS, CONV_DISK_THIN = 1 << 3, 1 << 7


def content(rng: random.Random, n: int, sparse: float) -> bytes:
    """``n`` bytes of disk content in 64 KiB extents, a ``sparse`` share of them zeros."""
    if n <= EXTENT:
        return bytes(n) if rng.random() < sparse else rng.randbytes(n)
    return b"".join(bytes(min(EXTENT, n - o)) if rng.random() < sparse else rng.randbytes(min(EXTENT, n - o))
                    for o in range(0, n, EXTENT))


def _offsets(rng: random.Random, size: int, io_size: int, scattered: bool) -> Iterator[tuple[int, int]]:
    """(offset, length) of the I/Os moving ``size`` bytes: sequential, or changed blocks spread
    over a larger disk (CBT incremental backups)."""
    offset, left = 0, size
    while left > 0:
        length = min(io_size, left)
        yield offset, length
        left -= length
        offset += length
        if scattered and rng.random() < 0.6:
            offset += io_size * rng.choice((1, 2, 4, 16, 64, 256))


# -- VDDK AIO ------------------------------------------------------------------------------------

def _io_payload(handle: int, write: bool, offset: int, total: int, frag_offset: int, frag_len: int) -> bytes:
    """AIO IO payload (44 bytes): handle, opcode (1 read / 0 write), offset, lengths."""
    return struct.pack("<QQQIIIII", handle, 0 if write else 1, offset, total, frag_offset, frag_len, frag_len, 0)


def vddk_io(pace: Pace, rng: random.Random, disk: str, size: int, *, write: bool = False, io_size: int = 262144,
            queue_depth: int = 1, sparse: float = 0.3, scattered: bool = False,
            ddb_keys: tuple[str, ...] = ("geometry.biosCylinders",)) -> Iterator[Step]:
    """A VDDK AIO disk session after ``nfc.vddk_handshake`` (see the module docstring).

    Marks ``aio_open_session``, ``aio_open_file``, ``aio_first_read`` / ``aio_first_write``,
    ``aio_close_session``, ``nfc_session_complete``.
    """
    handle = rng.getrandbits(32) | 0x10000
    op = 0
    flags = OPEN_READ_WRITE if write else nfc.OPEN_READ_ONLY

    def call(kind: int, payload: bytes, reply: bytes, extra: bytes = b"", mark: str | None = None,
             work: str = "reply") -> Iterator[Step]:
        nonlocal op
        yield Step(CLIENT, nfc.aio(kind, op, payload, extra), pace("program"), mark)
        yield Step(SERVER, nfc.aio(kind, op, reply), pace(work))
        op += 1

    yield from call(nfc.AIO_OPEN_SESSION, bytes(16), bytes(16), mark="aio_open_session")
    yield from call(nfc.AIO_SET_SOCK_OPTS, bytes(12), struct.pack("<III", 1 << 20, 1 << 20, 1))
    yield from call(nfc.AIO_SET_RES_POOL, struct.pack("<I", 1), bytes(4))
    path = disk.encode()
    yield from call(nfc.AIO_OPEN_FILE, struct.pack("<I12xII36x", len(path), nfc.FILE_TYPE_DISK, flags),
                    struct.pack("<8xQII12xI20x", handle, nfc.FILE_TYPE_DISK, flags, nfc.SECTOR), extra=path,
                    mark="aio_open_file", work="disk_io")
    for key in ddb_keys:
        yield from call(nfc.AIO_DDB_GET, struct.pack("<QI4x", handle, len(key)), bytes(16), extra=key.encode())
    first = "aio_first_write" if write else "aio_first_read"

    def request(offset: int, length: int, op_id: int, mark: str | None) -> Step:
        if not write:
            return Step(CLIENT, nfc.aio(nfc.AIO_IO, op_id, _io_payload(handle, False, offset, length, 0, 0)),
                        pace("program"), mark)
        data = content(rng, length, sparse)
        frames = tuple(nfc.aio(nfc.AIO_IO, op_id, _io_payload(handle, True, offset, length, f, min(EXTENT, length - f)),
                               data[f: f + EXTENT]) for f in range(0, length, EXTENT))
        return Step(CLIENT, frames, pace("program"), mark)

    def response(offset: int, length: int, op_id: int) -> Step:
        if write:
            return Step(SERVER, nfc.aio(nfc.AIO_IO, op_id, _io_payload(handle, True, offset, length, 0, length)),
                        pace("disk_io"))
        data = content(rng, length, sparse)
        frames = tuple(nfc.aio(nfc.AIO_IO, op_id, _io_payload(handle, False, offset, length, f, min(EXTENT, length - f)),
                               data[f: f + EXTENT]) for f in range(0, length, EXTENT))
        return Step(SERVER, frames, pace("disk_io"))

    pending: list[tuple[int, int, int]] = []
    for offset, length in _offsets(rng, size, io_size, scattered):
        yield request(offset, length, op, first)
        first = None
        pending.append((offset, length, op))
        op += 1
        if len(pending) >= queue_depth:
            yield response(*pending.pop(0))
    while pending:
        yield response(*pending.pop(0))
    yield from call(nfc.AIO_CLOSE_FILE, struct.pack("<Q", handle), bytes(8))
    yield from call(nfc.AIO_CLOSE_SESSION, bytes(4), bytes(4), mark="aio_close_session")
    yield Step(CLIENT, nfc.message(nfc.SESSION_COMPLETE), pace("program"), "nfc_session_complete")


# -- classic FSSRVR --------------------------------------------------------------------------------

def fssrvr_io(pace: Pace, rng: random.Random, disk: str, size: int, *, write: bool = False, io_size: int = 65536,
              sparse: float = 0.3, scattered: bool = False, first_mark: str = "nfc_first_message") -> Iterator[Step]:
    """Classic FSSRVR disk access (photon ``fssrvrOpenDisk`` / ``fssrvrWriteDisk``), see the docstring."""
    raw = disk.encode() + b"\0"
    capacity = max(size, 1 << 20) * rng.choice((1, 2, 4))
    yield Step(CLIENT, nfc.message(FSSRVR_OPEN, struct.pack("<IIB", len(raw), 0x0A, 0)) + raw, pace("program"),
               first_mark)
    yield Step(SERVER, nfc.message(FSSRVR_DISKGEO, struct.pack("<QII", capacity // nfc.SECTOR, 255, 63)),
               pace("disk_io"), "fssrvr_diskgeo")
    first = "fssrvr_first_write" if write else "fssrvr_first_read"
    for offset, length in _offsets(rng, size, io_size, scattered):
        header = nfc.message(FSSRVR_IO, struct.pack("<IQI", 1 if write else 0, offset, length))
        if write:
            yield Step(CLIENT, header + content(rng, length, sparse), pace("program"), first)
            yield Step(SERVER, nfc.message(FSSRVR_IO), pace("disk_io"))
        else:
            yield Step(CLIENT, header, pace("program"), first)
            yield Step(SERVER, nfc.message(FSSRVR_IO, struct.pack("<IQI", 0, offset, length))
                       + content(rng, length, sparse), pace("disk_io"))
        first = None
    yield Step(CLIENT, nfc.message(FSSRVR_CLOSE), pace("program"))
    yield Step(SERVER, nfc.message(FSSRVR_CLOSE), pace("reply"))
    yield Step(CLIENT, nfc.message(nfc.SESSION_COMPLETE), pace("program"), "nfc_session_complete")
    yield Step(SERVER, nfc.message(nfc.SESSION_COMPLETE), pace("reply"))


# -- nfclib / photon file and disk transfers ---------------------------------------------------------

def _raw_chunks(rng: random.Random, size: int, chunk: int, sparse: float) -> Iterator[bytes]:
    for offset in range(0, size, chunk):
        yield content(rng, min(chunk, size - offset), sparse)


def _disk_chunks(rng: random.Random, size: int, chunk: int, sparse: float) -> Iterator[bytes]:
    """photon's disk encoding, one FILE_DATA payload at a time (records never span payloads)."""
    ddb = {"ddb.adapterType": rng.choice(("lsilogic", "pvscsi", "ide")),
           "ddb.virtualHWVersion": str(rng.choice((11, 13, 19, 21))),
           "ddb.geometry.cylinders": str(size // (255 * 63 * 512) + 1), "ddb.geometry.heads": "255",
           "ddb.geometry.sectors": "63", "ddb.uuid": " ".join(f"{rng.getrandbits(8):02x}" for _ in range(16)),
           "ddb.thinProvisioned": "1"}
    meta = bytearray(struct.pack("<II", DSK_HDR, 1))
    for key, value in ddb.items():
        k, v = key.encode() + b"\0", value.encode() + b"\0"
        meta += struct.pack("<III", DDB_ENTRY, len(k), len(v)) + k + v
    meta += struct.pack("<III", DDB_ENTRY, 0, 0)
    yield bytes(meta)
    sectors = (size + nfc.SECTOR - 1) // nfc.SECTOR
    buf = bytearray(struct.pack("<II", DSK_HDR, 0))
    done = 0
    while done < sectors:
        run = min(RLE_MAX, sectors - done, rng.choice((8, 64, 128, 1024, 4096)))
        if rng.random() < sparse:                       # zero run: header only
            record = struct.pack("<II", RLE_HDR, run)
        else:
            run = min(run, (chunk - 16) // nfc.SECTOR)
            record = struct.pack("<II", RLE_HDR, run | RLE_DATA) + rng.randbytes(run * nfc.SECTOR)
        if len(buf) + len(record) > chunk:
            yield bytes(buf)
            buf = bytearray(struct.pack("<II", DSK_HDR, 0))
        buf += record
        done += run
    if len(buf) > 8:
        yield bytes(buf)


def _chunks(rng: random.Random, size: int, chunk: int, sparse: float, disk: bool) -> Iterator[bytes]:
    return _disk_chunks(rng, size, chunk, sparse) if disk else _raw_chunks(rng, size, chunk, sparse)


def file_put(pace: Pace, rng: random.Random, path: str, size: int, *, token: str | None = "PlainText",
             disk: bool = False, chunk: int = nfc.MAX_XFER, sparse: float = 0.0, app_gap: tuple = (0.0, 0.0),
             first_mark: str = "nfc_first_message") -> Iterator[Step]:
    """Upload ``size`` bytes to ``path`` (RAW file, or a DISK in photon's encoding).

    ``token`` sends NFC_CLIENTRANDOM first (nfclib); ``None`` starts with FILE_PUT (photon).
    ``app_gap`` adds a per-chunk delay range (a source slower than the network).
    """
    mark = first_mark
    if token is not None:
        yield Step(CLIENT, nfc.message(nfc.CLIENTRANDOM, token.encode()), pace("program"), mark)
        mark = "nfc_file_put"
    raw = path.encode() + b"\0"
    kind = nfc.FILE_TYPE_DISK if disk else nfc.FILE_TYPE_RAW
    flags = (CONV_DISK_VMFS | CONV_DISK_THIN | nfc.CREATE_OVERWRITE) if disk else nfc.CREATE_OVERWRITE
    yield Step(CLIENT, nfc.message(nfc.FILE_PUT, struct.pack("<IIIQQ", kind, flags, len(raw), size, size)) + raw,
               pace("program"), mark)
    first = True
    for data in _chunks(rng, size, chunk, sparse, disk):
        yield Step(CLIENT, nfc.file_data(data), pace("program") + rng.uniform(*app_gap),
                   "nfc_first_data" if first else None)
        first = False
    yield Step(CLIENT, nfc.file_data(b""), pace("program"), "nfc_end_of_file")
    yield Step(SERVER, nfc.message(nfc.PUTFILE_DONE), pace("disk_io"), "nfc_putfile_done")
    yield Step(CLIENT, nfc.message(nfc.SESSION_COMPLETE), pace("program"), "nfc_session_complete")
    yield Step(SERVER, nfc.message(nfc.SESSION_COMPLETE), pace("reply"))


def file_get(pace: Pace, rng: random.Random, path: str, size: int, *, token: str | None = "PlainText",
             disk: bool = False, chunk: int = nfc.MAX_XFER, sparse: float = 0.0,
             first_mark: str = "nfc_first_message") -> Iterator[Step]:
    """Download ``path`` (``size`` bytes) with NFC_FILE_GET; the server streams FILE_DATA."""
    if token is not None:
        yield Step(CLIENT, nfc.message(nfc.CLIENTRANDOM, token.encode()), pace("program"), first_mark)
        first_mark = "nfc_file_get"
    raw = path.encode() + b"\0"
    kind = nfc.FILE_TYPE_DISK if disk else nfc.FILE_TYPE_RAW
    yield Step(CLIENT, nfc.message(FILE_GET, struct.pack("<III", kind, len(raw), 0)) + raw, pace("program"), first_mark)
    flags = (CONV_DISK_VMFS | CONV_DISK_THIN) if disk else 0
    # server's FILE_PUT: the documented fields, then nfclib's packed extras (all zero) inside the 264 bytes
    described = struct.pack("<IIIQQIIBI", kind, flags, len(raw), size, size, 0, 0, 0, 0)
    yield Step(SERVER, nfc.message(nfc.FILE_PUT, described) + raw, pace("disk_io"), "nfc_file_put")
    first = True
    for data in _chunks(rng, size, chunk, sparse, disk):
        yield Step(SERVER, nfc.file_data(data), pace("program"), "nfc_first_data" if first else None)
        first = False
    yield Step(SERVER, nfc.file_data(b""), pace("program"), "nfc_end_of_file")
    yield Step(CLIENT, nfc.message(nfc.SESSION_COMPLETE), pace("program"), "nfc_session_complete")
    yield Step(SERVER, nfc.message(nfc.SESSION_COMPLETE), pace("reply"))
