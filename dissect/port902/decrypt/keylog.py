"""TLS key logs: the NSS ``SSLKEYLOGFILE`` format and pcapng Decryption Secrets Blocks.

NSS key log format (as written by NSS, OpenSSL, BoringSSL and Python's ``ssl``): one secret
a line, ``<LABEL> <client_random hex> <secret hex>``, ``#`` comments.  Labels read here:

* ``CLIENT_RANDOM`` — the TLS 1.0-1.2 master secret (RFC 5246 §8.1, 48 bytes);
* ``CLIENT_HANDSHAKE_TRAFFIC_SECRET``, ``SERVER_HANDSHAKE_TRAFFIC_SECRET``,
  ``CLIENT_TRAFFIC_SECRET_N``, ``SERVER_TRAFFIC_SECRET_N`` — TLS 1.3 traffic secrets
  (RFC 8446 §7.1; N > 0 after key updates, §7.2, derived here when not logged).

Other labels (``EXPORTER_SECRET``, early-data secrets, ``RSA``) are kept but not used.

A pcapng Decryption Secrets Block (block type 0x0000000A, pcapng spec §4.7, what
``editcap --inject-secrets tls,keys.txt`` writes) carries the same text with secrets type
``0x544c534b`` ("TLSK"); :func:`read_pcapng_secrets` finds them in a capture file.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field

DSB_BLOCK = 0x0000000A
SHB_BLOCK = 0x0A0D0D0A
TLS_KEY_LOG = 0x544C534B
PACKET_BLOCKS = (2, 3, 6)  # obsolete packet, simple packet, enhanced packet
_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}  # 0x1A2B3C4D as written


class KeyLogError(Exception):
    """A key log that cannot be read at all (a missing file, not text)."""


@dataclass
class KeyLog:
    """Secrets by client random: ``{client_random: {label: secret}}``."""

    secrets: dict[bytes, dict[str, bytes]] = field(default_factory=dict)
    lines: int = 0  # lines that gave a secret
    bad_lines: int = 0  # lines that looked like secrets but could not be read

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __len__(self) -> int:
        return len(self.secrets)

    def add(self, label: str, client_random: bytes, secret: bytes) -> None:
        self.secrets.setdefault(client_random, {})[label] = secret
        self.lines += 1

    def update(self, other: "KeyLog") -> None:
        for cr, labels in other.secrets.items():
            self.secrets.setdefault(cr, {}).update(labels)
        self.lines += other.lines
        self.bad_lines += other.bad_lines

    def get(self, client_random: bytes) -> dict[str, bytes] | None:
        return self.secrets.get(bytes(client_random))

    def master_secret(self, client_random: bytes) -> bytes | None:
        entry = self.get(client_random)
        return None if entry is None else entry.get("CLIENT_RANDOM")

    def tls13_secret(self, client_random: bytes, label: str) -> bytes | None:
        entry = self.get(client_random)
        return None if entry is None else entry.get(label)


def parse_keylog(text: str | bytes) -> KeyLog:
    """Parse NSS key log text; lines that are not ``LABEL hex hex`` are counted, not raised."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    log = KeyLog()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            log.bad_lines += 1
            continue
        label, cr_hex, secret_hex = parts
        try:
            cr, secret = bytes.fromhex(cr_hex), bytes.fromhex(secret_hex)
        except ValueError:
            log.bad_lines += 1
            continue
        if label == "RSA" or len(cr) != 32 or not secret:
            if label != "RSA":
                log.bad_lines += 1
            continue
        log.add(label, cr, secret)
    return log


def load_keylog(path: str | os.PathLike) -> KeyLog:
    """Read a key log file; :class:`KeyLogError` (one sentence) when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise KeyLogError(f"cannot read key log {os.fspath(path)!r}: {exc.strerror or exc}") from None
    if b"\x00" in data[:4096]:
        raise KeyLogError(f"key log {os.fspath(path)!r} is not text (NSS key log format expected)")
    log = parse_keylog(data)
    if not log and log.bad_lines:
        raise KeyLogError(f"key log {os.fspath(path)!r} has no line in NSS key log format "
                          "('CLIENT_RANDOM <hex> <hex>' or a TLS 1.3 traffic secret)")
    return log


def _open(path: str | os.PathLike):
    handle = open(path, "rb")
    if handle.read(2) == b"\x1f\x8b":
        handle.close()
        return gzip.open(path, "rb")
    handle.seek(0)
    return handle


def read_pcapng_secrets(path: str | os.PathLike, scan_all: bool = False) -> KeyLog:
    """The TLS key log text of every Decryption Secrets Block in a pcapng file (gzip too).

    Reads the blocks before the first packet (where ``editcap --inject-secrets`` puts them), so
    a capture without keys costs a few reads; ``scan_all`` walks every block header (bodies are
    skipped by seeking).  Not pcapng, or damaged: whatever was found before the damage."""
    log = KeyLog()
    try:
        handle = _open(path)
    except OSError:
        return log
    with handle:
        try:
            head = handle.read(12)
            if len(head) < 12 or struct.unpack("<I", head[:4])[0] != SHB_BLOCK:
                return log
            order = _BOM.get(head[8:12])
            if order is None:
                return log
            handle.seek(0)
            while True:
                hdr = handle.read(8)
                if len(hdr) < 8:
                    break
                btype, blen = struct.unpack(order + "II", hdr)
                if btype == SHB_BLOCK:  # a new section may change the byte order
                    bom = handle.read(4)
                    order = _BOM.get(bom, order)
                    btype, blen = struct.unpack(order + "II", hdr)
                    handle.seek(-4, os.SEEK_CUR)
                if blen < 12 or blen % 4:
                    break
                if btype in PACKET_BLOCKS and not scan_all:
                    break  # keys come before the packets they decrypt (editcap --inject-secrets)
                if btype == DSB_BLOCK:
                    body = handle.read(blen - 8)
                    if len(body) < blen - 8 or len(body) < 12:
                        break
                    stype, slen = struct.unpack(order + "II", body[:8])
                    if stype == TLS_KEY_LOG and 8 + slen <= len(body) - 4:
                        log.update(parse_keylog(body[8:8 + slen]))
                else:
                    handle.seek(blen - 8, os.SEEK_CUR)
        except (OSError, EOFError, struct.error, gzip.BadGzipFile, zlib.error):  # zlib: a damaged member (found by fuzz/)
            pass
    return log
