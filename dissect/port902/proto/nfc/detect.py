"""Is this NFC? A cheap, grammar-based test of the first bytes after TLS #1 (or of a mid-stream capture).

A classic message is 264 bytes whose type is known and whose fixed fields are consistent with it;
an AIO frame starts with its magic (protocol.md §6).
"""

from __future__ import annotations

from .wire import (
    _ZERO_BODY_TYPES,
    AIO_MAGIC_BYTES,
    AIO_TYPES,
    FILE_TYPES,
    MAX_TEXT_LENGTH,
    MESSAGE_SIZE,
    MESSAGE_TYPES,
)

# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

def _word(block: bytes, offset: int) -> int | None:
    if len(block) < offset + 4:
        return None
    return int.from_bytes(block[offset:offset + 4], "little")


def _length_ok(value: int | None, limit: int = MAX_TEXT_LENGTH, allow_zero: bool = False) -> bool:
    return value is None or (0 if allow_zero else 1) <= value <= limit


def _classic_consistent(msg_type: int, block: bytes) -> bool:
    """Do the bytes after the type fit that type (as far as *block* reaches)?"""
    w4, w8, w12 = _word(block, 4), _word(block, 8), _word(block, 12)
    if msg_type in _ZERO_BODY_TYPES:
        return not any(block[4:16])
    if msg_type == 0:
        return any(block[4:MESSAGE_SIZE])
    if msg_type == 1:
        return w4 in FILE_TYPES and _length_ok(w12)
    if msg_type == 2:
        return w4 in FILE_TYPES and _length_ok(w8)
    if msg_type == 20:
        return _length_ok(w12, allow_zero=True)
    if msg_type in (21, 34):
        return _length_ok(w4)
    if msg_type == 23:
        return w4 in (0, 1)
    if msg_type in (31, 32):
        return _length_ok(w4)
    if msg_type == 36:
        return _length_ok(w4, allow_zero=True) and _length_ok(w8, allow_zero=True)
    if msg_type == 43:
        token = block[4:36].split(b"\0", 1)[0]
        return bool(token) and all(0x20 <= b < 0x7F for b in token)
    if msg_type == 51:
        return w4 is None or 0 < w4 < 256
    if msg_type == 54:
        return _length_ok(w4, 4096, True) and _length_ok(w8, 4096, True)
    if msg_type == 55:
        return w4 is None or w4 < 1 << 16
    return True


def looks_like_nfc(data: bytes) -> bool:
    """Are these the first bytes of an NFC stream (classic message or AIO frame)?

    A classic message needs at least 8 bytes: a known type and a plausible first field.
    An AIO frame is recognised by its magic (and a known type once 8 bytes are there).
    """
    data = bytes(data[:MESSAGE_SIZE])
    if data[:4] == AIO_MAGIC_BYTES:
        return len(data) < 8 or _word(data, 4) in AIO_TYPES
    if len(data) < 8:
        return False
    msg_type = _word(data, 0)
    return msg_type in MESSAGE_TYPES and _classic_consistent(msg_type, data)


