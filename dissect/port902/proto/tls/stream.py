"""One direction's TCP bytes -> TLS events, incrementally (the parser the sessions feed).

Port-902 specifics (protocol.md §3.2, §4.2, §5.3, §8): after ``200 Connect`` TLS #1 is abandoned
without close_notify and the same stream continues with a new ClientHello (TLS #2) or in clear;
:class:`TlsDirection` notices a second handshake and the end of TLS and hands the rest back.
Encrypted bodies are skipped, never buffered: a multi-GB stream costs O(1) memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import Malformed
from ..incremental import IncrementalParser
from .hello import ClientHello, ServerHello, parse_client_hello, parse_server_hello
from .records import (
    HandshakeReassembler,
    HandshakeTooLarge,
    parse_alert,
    plausible_record_header,
)
from .registry import (
    ALERT,
    ALERT_DESCRIPTIONS,
    ALERT_LEVELS,
    CONTENT_TYPES,
    HANDSHAKE_TYPES,
    RECORD_HEADER,
)
from .x509 import CertificateInfo, certificate_summary, parse_certificate_list

# ---------------------------------------------------------------------------------------------
# Events of the incremental parser
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TlsRecord:
    """A record header; ts/frame are those of the chunk holding the header's first byte."""

    ts: float
    frame: int
    content_type: int
    version: int
    length: int
    encrypted: bool


@dataclass(frozen=True, slots=True)
class TlsHandshakeMessage:
    """A complete clear-text handshake message; ts/frame of the record where it started.

    ``parsed`` is a ClientHello, a ServerHello, a list of CertificateInfo, or None.
    """

    ts: float
    frame: int
    msg_type: int
    parsed: object
    length: int = 0


@dataclass(frozen=True, slots=True)
class TlsAlert:
    """An alert; level/description are names (unknown numbers as ``unknown(N)``), None if encrypted."""

    ts: float
    frame: int
    level: str | None
    description: str | None
    encrypted: bool


@dataclass(frozen=True, slots=True)
class TlsChangeCipherSpec:
    """This direction's later handshake records are encrypted (TLS <= 1.2; dummy in 1.3)."""

    ts: float
    frame: int


@dataclass(frozen=True, slots=True)
class TlsNewHandshake:
    """A fresh hello after protected traffic: TLS #2 started on the raw stream (protocol.md §4.2)."""

    ts: float
    frame: int
    hello: object


@dataclass(frozen=True, slots=True)
class TlsEnd:
    """The stream stopped being TLS at a record boundary; ``remainder`` is for the next parser."""

    ts: float
    frame: int
    reason: str
    remainder: bytes


@dataclass(frozen=True, slots=True)
class TlsWeird:
    """Something malformed or unexpected, reported instead of raised (Zeek's weird.log)."""

    ts: float
    frame: int
    kind: str
    detail: str


# ---------------------------------------------------------------------------------------------
# Incremental per-direction parser
# ---------------------------------------------------------------------------------------------

_HEADER, _SKIP, _HANDSHAKE, _COLLECT, _PROBE, _RESYNC, _ENDED = range(7)
_HELLO_TYPES = {"client": (1,), "server": (2,), None: (1, 2)}
_MIN_HELLO = 38  # 2 version + 32 random + 1 session_id length + 2 cipher + 1 compression


def _alert_names(level: int, description: int) -> tuple[str, str]:
    return (ALERT_LEVELS.get(level, f"unknown({level})"),
            ALERT_DESCRIPTIONS.get(description, f"unknown({description})"))


class TlsDirection(IncrementalParser):
    """Record-layer parser for one direction of one TCP stream.

    ``feed()`` takes chunks split anywhere and returns events.  Encrypted bodies are
    skipped by count; only clear handshake, alert and CCS bodies are looked at.  *role*
    (``"client"`` or ``"server"``) says which hello starts a handshake here; if None it is
    learnt from the first hello.

    Counters: ``records``, ``bytes`` (header + body bytes seen), ``app_data_records``,
    ``app_data_bytes`` (body bytes seen), ``bytes_lost`` (reported by gap()),
    ``handshake_count`` (1 after the first hello, +1 per TlsNewHandshake).
    A second hello counts as a new handshake only after this direction sent protected
    records since its last hello, so a HelloRetryRequest's second ClientHello does not.
    The feed/gap/resync skeleton is :class:`~..incremental.IncrementalParser`'s.
    """

    _RESYNC = _RESYNC
    _SYNC_WINDOW = RECORD_HEADER.size

    def __init__(self, role: str | None = None) -> None:
        if role not in _HELLO_TYPES:
            raise ValueError(f"role must be 'client', 'server' or None, not {role!r}")
        super().__init__()
        self.role = role
        self.encrypted = False
        self.handshake_count = 0
        self.version: int | None = None
        self.records = 0
        self.bytes = 0
        self.app_data_records = 0
        self.app_data_bytes = 0
        self.end: TlsEnd | None = None
        self._mode = _HEADER
        self._hdr = bytearray()
        self._hdr_origin = (0.0, 0)
        self._rec_origin = (0.0, 0)
        self._type = 0
        self._rec_len = 0
        self._left = 0
        self._body = bytearray()
        self._record_emitted = True
        self._protected_seen = False  # encrypted records sent since this direction's last hello
        self._reasm = HandshakeReassembler()
        self._hs_origin = (0.0, 0)
        self._unconfirmed = 0  # headers still to see after a resync before a bad one means TlsEnd

    # -- public API ----------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once TlsEnd was emitted; the rest of the stream belongs to another parser."""
        return self._mode == _ENDED

    def mark_encrypted(self) -> None:
        """The caller knows later handshake records of this direction are encrypted (TLS 1.3)."""
        self.encrypted = True

    def _check_open(self) -> None:
        if self._mode == _ENDED:
            raise RuntimeError("TLS parsing ended (not_tls); hand later bytes to another parser")

    def _step(self, data: bytes, pos: int, ts: float, frame: int, events: list) -> int:
        mode = self._mode
        if mode == _HEADER:
            return self._read_header(data, pos, ts, frame, events)
        if mode == _RESYNC:
            return self._resync_step(data, pos, ts, frame, events)
        # record body: skipped by count unless it is clear and worth reading
        take = min(self._left, len(data) - pos)
        if mode == _HANDSHAKE:
            self._handshake_bytes(data[pos:pos + take], events)
        elif mode in (_COLLECT, _PROBE):
            self._body += memoryview(data)[pos:pos + take]
        pos += take
        self._left -= take
        self.bytes += take
        if self._type == 23:
            self.app_data_bytes += take
        if mode == _PROBE and len(self._body) >= 6 and self._left:
            self._probe_prefix(events)
        if self._left == 0:
            self._record_done(events)
        return pos

    def _gap(self, nbytes: int, ts: float, frame: int, events: list) -> None:
        mode = self._mode
        if mode != _HEADER and nbytes <= self._left:
            # record framing survives; in a clear record, what the bytes belonged to does not
            self._left -= nbytes
            if mode != _SKIP:
                self._emit_pending_record(events)
                events.append(TlsWeird(ts, frame, "gap_in_record",
                                       f"{nbytes} bytes lost inside a "
                                       f"{CONTENT_TYPES[self._type]} record"))
                self._body.clear()
                kept = mode == _HANDSHAKE and self._reasm.skip(nbytes)
                if not kept:
                    if mode == _HANDSHAKE:
                        self._reasm.reset()
                    self._mode = _SKIP
            if self._left == 0:
                self._mode = _HEADER
            return
        self._emit_pending_record(events)
        where = "a record header" if mode == _HEADER else "the end of a record"
        events.append(TlsWeird(ts, frame, "gap_desync",
                               f"{nbytes} bytes lost across {where}; resynchronising"))
        self._reasm.reset()
        self._hdr.clear()
        self._body.clear()
        self._enter_resync()

    def _finish(self, ts: float, frame: int, events: list) -> None:
        if self._mode == _ENDED:
            return
        self._emit_pending_record(events)
        if self._hdr:
            events.append(TlsWeird(ts, frame, "truncated",
                                   f"stream ended {len(self._hdr)} bytes into a record header"))
        elif self._mode != _HEADER:
            events.append(TlsWeird(ts, frame, "truncated",
                                   f"stream ended {self._left} bytes before the end of a "
                                   f"{CONTENT_TYPES[self._type]} record"))
        elif self._reasm.pending:
            events.append(TlsWeird(ts, frame, "truncated",
                                   "stream ended inside a handshake message"))

    def _weird(self, ts: float, frame: int, kind: str, detail: str) -> TlsWeird:
        return TlsWeird(ts, frame, kind, detail)

    # -- records -------------------------------------------------------------------------------

    def _read_header(self, data: bytes, pos: int, ts: float, frame: int, events: list) -> int:
        if not self._hdr:
            self._hdr_origin = (ts, frame)
        piece = data[pos:pos + RECORD_HEADER.size - len(self._hdr)]
        self._hdr += piece
        pos += len(piece)
        if not plausible_record_header(self._hdr, partial=True):
            held = bytes(self._hdr)
            self._hdr.clear()
            if self._unconfirmed:
                # the resync candidate was a false one: keep looking instead of giving up on TLS
                self._unconfirmed = 0
                events.append(TlsWeird(ts, frame, "resync_failed",
                                       "record after a resync point is not TLS; resynchronising"))
                self._enter_resync(held[1:], skipped=1)
                return pos
            self._mode = _ENDED
            self._ended_held = held
            self._halt()
            return pos
        if len(self._hdr) == RECORD_HEADER.size:
            content_type, version, length = RECORD_HEADER.unpack(self._hdr)
            self._hdr.clear()
            if self._unconfirmed:
                self._unconfirmed -= 1
            self._start_record(content_type, version, length, events)
        return pos

    def _halted(self, rest: bytes, events: list) -> None:
        self.end = TlsEnd(*self._hdr_origin, "not_tls", self._ended_held + rest)
        events.append(self.end)

    def _start_record(self, content_type: int, version: int, length: int, events: list) -> None:
        self.records += 1
        self.bytes += RECORD_HEADER.size
        self.version = version
        self._type, self._rec_len, self._left = content_type, length, length
        self._rec_origin = self._hdr_origin
        self._body.clear()
        self._record_emitted = True
        ts, frame = self._rec_origin

        def record(encrypted: bool) -> None:
            events.append(TlsRecord(ts, frame, content_type, version, length, encrypted))

        if content_type == 23:
            self.app_data_records += 1
            self._protected_seen = True
            record(True)
            self._mode = _SKIP
        elif content_type == 22:
            if self.encrypted:
                self._record_emitted = False  # clear or not is known only from the body
                self._mode = _PROBE
            else:
                record(False)
                self._mode = _HANDSHAKE
        elif content_type == 21:
            # a 2-byte alert is clear even after CCS: no cipher adds less than 2 bytes
            if self.encrypted and length != ALERT.size:
                self._protected_seen = True
                record(True)
                events.append(TlsAlert(ts, frame, None, None, True))
                self._mode = _SKIP
            else:
                record(False)
                self._mode = _COLLECT
        elif content_type == 20:
            record(False)
            self._mode = _COLLECT
        else:  # heartbeat
            if self.encrypted:
                self._protected_seen = True
            record(self.encrypted)
            self._mode = _SKIP
        if length == 0:
            self._record_done(events)

    def _emit_pending_record(self, events: list) -> None:
        """A PROBE record whose clear/encrypted verdict is still open counts as encrypted."""
        if not self._record_emitted:
            self._record_emitted = True
            self._protected_seen = True
            ts, frame = self._rec_origin
            events.append(TlsRecord(ts, frame, self._type, self.version or 0, self._rec_len, True))

    def _hello_prefix_ok(self, prefix: bytes) -> bool:
        """Cheap test of a handshake record body's first 6 bytes: could it be a fresh hello?"""
        if len(prefix) < 6 or prefix[0] not in _HELLO_TYPES[self.role]:
            return False
        length = int.from_bytes(prefix[1:4], "big")
        version = int.from_bytes(prefix[4:6], "big")
        return (_MIN_HELLO <= length and 4 + length <= self._rec_len
                and 0x0300 <= version <= 0x0303)

    def _probe_prefix(self, events: list) -> None:
        if not self._record_emitted and not self._hello_prefix_ok(bytes(self._body[:6])):
            self._emit_pending_record(events)
            self._body.clear()
            self._mode = _SKIP

    def _fresh_hello(self, body: bytes):
        """Thorough test of a whole record body in the encrypted state; the hello or None."""
        if not self._hello_prefix_ok(body[:6]):
            return None
        length = int.from_bytes(body[1:4], "big")
        parser = parse_client_hello if body[0] == 1 else parse_server_hello
        try:
            return parser(body[4:4 + length])
        except Malformed:
            return None

    def _record_done(self, events: list) -> None:
        mode = self._mode
        body = bytes(self._body)
        self._body.clear()
        self._mode = _HEADER
        ts, frame = self._rec_origin
        if mode == _PROBE and not self._record_emitted:
            if self._fresh_hello(body) is not None:
                self._record_emitted = True
                events.append(TlsRecord(ts, frame, 22, self.version or 0, self._rec_len, False))
                self.encrypted = False
                self._reasm.reset()
                self._handshake_bytes(body, events)
            else:
                self._emit_pending_record(events)
        elif mode == _COLLECT and self._type == 20:
            if body == b"\x01":
                events.append(TlsChangeCipherSpec(ts, frame))
                self.encrypted = True
            else:
                events.append(TlsWeird(ts, frame, "bad_change_cipher_spec",
                                       f"change_cipher_spec body {body[:8].hex()!r} is not 01"))
        elif mode == _COLLECT and self._type == 21:
            if not body or len(body) % ALERT.size:
                events.append(TlsWeird(ts, frame, "bad_alert",
                                       f"clear alert record of {len(body)} bytes"))
            for i in range(0, len(body) - 1, ALERT.size):
                try:
                    level, description = parse_alert(body[i:i + ALERT.size])
                except Malformed as exc:
                    events.append(TlsWeird(ts, frame, "bad_alert", str(exc)))
                    continue
                events.append(TlsAlert(ts, frame, *_alert_names(level, description), False))

    # -- handshake messages --------------------------------------------------------------------

    def _handshake_bytes(self, piece: bytes, events: list) -> None:
        first_origin = self._hs_origin if self._reasm.pending else self._rec_origin
        too_large = None
        try:
            messages = self._reasm.feed(piece)
        except HandshakeTooLarge as exc:
            messages, too_large = exc.completed, exc
        for i, (msg_type, body) in enumerate(messages):
            self._on_message(msg_type, body, first_origin if i == 0 else self._rec_origin, events)
        if too_large is not None:
            events.append(TlsWeird(*self._rec_origin, "handshake_too_large", str(too_large)))
        if self._reasm.pending:
            self._hs_origin = first_origin if not messages else self._rec_origin

    def _on_message(self, msg_type: int, body: bytes, origin: tuple[float, int], events: list) -> None:
        ts, frame = origin
        parsed: ClientHello | ServerHello | list[CertificateInfo] | None = None
        name = HANDSHAKE_TYPES.get(msg_type, str(msg_type))
        if msg_type in (1, 2):
            try:
                parsed = parse_client_hello(body) if msg_type == 1 else parse_server_hello(body)
            except Malformed as exc:
                events.append(TlsWeird(ts, frame, "malformed_handshake", f"{name}: {exc}"))
            else:
                self._on_hello(msg_type, parsed, origin, events)
        elif msg_type == 11:
            try:
                parsed = [certificate_summary(der) for der in parse_certificate_list(body)]
            except Malformed as exc:
                events.append(TlsWeird(ts, frame, "malformed_handshake", f"{name}: {exc}"))
        events.append(TlsHandshakeMessage(ts, frame, msg_type, parsed, len(body)))

    def _on_hello(self, msg_type: int, hello: ClientHello | ServerHello, origin: tuple[float, int],
                  events: list) -> None:
        role = "client" if msg_type == 1 else "server"
        if self.role is None:
            self.role = role
        if role != self.role:
            events.append(TlsWeird(*origin, "unexpected_hello",
                                   f"{HANDSHAKE_TYPES[msg_type]} in the {self.role} direction"))
            return
        if self.handshake_count == 0:
            self.handshake_count = 1
        elif self._protected_seen:
            # protected records went by since the last hello: this is a brand-new handshake
            # (TLS #2 on the raw stream), not a HelloRetryRequest's second ClientHello
            self.handshake_count += 1
            events.append(TlsNewHandshake(*origin, hello))
        self.encrypted = False
        self._protected_seen = False
        if (isinstance(hello, ServerHello) and not hello.is_hello_retry_request  # msg_type 2
                and (hello.selected_version == 0x0304 or hello.selected_version >> 8 == 0x7F)):
            self.encrypted = True  # TLS 1.3: everything after ServerHello is protected

    # -- resynchronisation ---------------------------------------------------------------------

    def _sync_find(self, buf: bytes, start: int) -> int:
        """First offset >= *start* of a plausible type-22/23 header with the version seen so far, or -1."""
        if self.version is not None:
            patterns = [bytes([t]) + self.version.to_bytes(2, "big") for t in (22, 23)]
        else:
            patterns = [b"\x16\x03", b"\x17\x03"]
        best = -1
        for pattern in patterns:
            at = self._first_hit(buf, pattern, start, RECORD_HEADER.size, plausible_record_header)
            if at != -1 and (best == -1 or at < best):
                best = at
        return best

    def _synced(self, ts: float, frame: int, events: list) -> None:
        events.append(TlsWeird(ts, frame, "resync", f"skipped {self._skipped} bytes to the next "
                                                    f"plausible record header"))
        self._unconfirmed = 2  # the candidate and the header after it
        self._mode = _HEADER
