"""TLS record and handshake headers (RFC 8446 §5.1, RFC 5246 §6.2) and handshake reassembly.

Handshake messages may span records and records may carry several messages (RFC 8446 §5.1);
``HandshakeReassembler`` bounds what it buffers (``MAX_HANDSHAKE_MESSAGE``).
"""

from __future__ import annotations

from ...errors import Malformed, NeedMoreData
from .registry import (
    ALERT,
    ALERT_LEVELS,
    CONTENT_TYPES,
    HANDSHAKE_HEADER,
    MAX_HANDSHAKE_MESSAGE,
    MAX_RECORD_LENGTH,
    RECORD_HEADER,
)

# ---------------------------------------------------------------------------------------------
# Record and handshake headers
# ---------------------------------------------------------------------------------------------

def parse_record_header(buf: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Return ``(content_type, version, length)`` of the record header at *offset*.

    NeedMoreData when fewer than 5 bytes are there; Malformed when the bytes cannot be a
    TLS record header (that is how the caller learns the stream is no longer TLS).
    """
    if offset < 0 or len(buf) - offset < RECORD_HEADER.size:
        raise NeedMoreData(f"record header needs {RECORD_HEADER.size} bytes")
    content_type, version, length = RECORD_HEADER.unpack_from(buf, offset)
    if content_type not in CONTENT_TYPES:
        raise Malformed(f"record content type {content_type} is not 20..24")
    if version >> 8 != 3:
        raise Malformed(f"record version 0x{version:04X} does not have major version 3")
    if length > MAX_RECORD_LENGTH:
        raise Malformed(f"record length {length} exceeds {MAX_RECORD_LENGTH}")
    return content_type, version, length


def plausible_record_header(buf: bytes | bytearray, offset: int = 0, partial: bool = False) -> bool:
    """True if the bytes at *offset* are a well-formed record header.

    With ``partial=True`` a header cut short counts as plausible as long as the bytes that
    are there do not already rule it out (used at chunk boundaries).
    """
    head = bytes(buf[offset:offset + RECORD_HEADER.size]) if offset >= 0 else b""
    if len(head) < RECORD_HEADER.size:
        if not partial:
            return False
        if len(head) >= 1 and head[0] not in CONTENT_TYPES:
            return False
        if len(head) >= 2 and head[1] != 3:
            return False
        # length high byte alone already exceeds the maximum?
        return not (len(head) == 4 and head[3] << 8 > MAX_RECORD_LENGTH)
    try:
        parse_record_header(head)
    except (Malformed, NeedMoreData):
        return False
    return True


def parse_handshake_header(buf: bytes | bytearray, offset: int = 0) -> tuple[int, int]:
    """Return ``(msg_type, length)`` of the 4-byte handshake header at *offset*."""
    if offset < 0 or len(buf) - offset < HANDSHAKE_HEADER.size:
        raise NeedMoreData(f"handshake header needs {HANDSHAKE_HEADER.size} bytes")
    (word,) = HANDSHAKE_HEADER.unpack_from(buf, offset)
    return word >> 24, word & 0xFFFFFF


def parse_alert(body: bytes) -> tuple[int, int]:
    """Return ``(level, description)`` of a clear-text alert.

    NeedMoreData below 2 bytes (TLS <= 1.2 lets an alert be split across records);
    Malformed for a level that is neither warning nor fatal.
    """
    if len(body) < ALERT.size:
        raise NeedMoreData("alert needs 2 bytes")
    level, description = ALERT.unpack_from(body, 0)
    if level not in ALERT_LEVELS:
        raise Malformed(f"alert level {level} is neither warning (1) nor fatal (2)")
    return level, description


# ---------------------------------------------------------------------------------------------
# Handshake reassembly
# ---------------------------------------------------------------------------------------------

class HandshakeTooLarge(Malformed):
    """A handshake header announced more than the cap; carries what completed before it."""

    def __init__(self, msg_type: int, length: int, completed: list[tuple[int, bytes]],
                 limit: int = MAX_HANDSHAKE_MESSAGE) -> None:
        super().__init__(f"handshake message type {msg_type} of {length} bytes exceeds {limit}")
        self.msg_type = msg_type
        self.length = length
        self.completed = completed


class HandshakeReassembler:
    """Handshake messages out of handshake-record payloads.

    A message may span records and a record may hold several messages (RFC 5246 §6.2.1).
    A message larger than *max_message* raises :class:`HandshakeTooLarge` (a Malformed); its
    body is then discarded as it streams past, so later messages stay in step.
    """

    def __init__(self, max_message: int = MAX_HANDSHAKE_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._discard = 0

    @property
    def pending(self) -> int:
        """Bytes held (or still to discard) that do not yet form a complete message."""
        return len(self._buf) + self._discard

    def reset(self) -> None:
        """Forget any partial message (after a gap or when a new handshake starts)."""
        self._buf.clear()
        self._discard = 0

    def skip(self, nbytes: int) -> bool:
        """Account for *nbytes* lost inside the message being collected.

        Returns True when the loss stays inside that message (it is dropped, later messages
        stay in step) and False when the framing is lost; the caller then calls reset().
        """
        if self._discard:
            if nbytes > self._discard:
                return False
            self._discard -= nbytes
            return True
        if len(self._buf) < HANDSHAKE_HEADER.size:
            return False
        _, length = parse_handshake_header(self._buf)
        remaining = HANDSHAKE_HEADER.size + length - len(self._buf)
        if nbytes > remaining:
            return False
        self._buf.clear()
        self._discard = remaining - nbytes
        return True

    def feed(self, payload: bytes) -> list[tuple[int, bytes]]:
        """Add one record payload; return the ``(msg_type, body)`` pairs it completed."""
        view = memoryview(payload)
        if self._discard:
            skip = min(self._discard, len(view))
            self._discard -= skip
            view = view[skip:]
        self._buf += view
        out: list[tuple[int, bytes]] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= HANDSHAKE_HEADER.size:
            msg_type, length = parse_handshake_header(buf, pos)
            if length > self.max_message:
                available = len(buf) - pos - HANDSHAKE_HEADER.size
                if available >= length:
                    del buf[:pos + HANDSHAKE_HEADER.size + length]
                else:
                    self._discard = length - available
                    buf.clear()
                raise HandshakeTooLarge(msg_type, length, out, self.max_message)
            end = pos + HANDSHAKE_HEADER.size + length
            if end > len(buf):
                break
            out.append((msg_type, bytes(buf[pos + HANDSHAKE_HEADER.size:end])))
            pos = end
        del buf[:pos]
        return out


