"""Per-connection application state machine (stage 3): what the bytes of one
authd connection say, phase by phase.

A port-902 connection is a chain of layers on one TCP stream (design.md §1)::

    banner (clear) -> TLS #1 (authd lines inside) -> after "200 Connect":
        TLS #2 on the raw stream (MKS, NFC nbdssl)  |  cleartext NFC (nbd)

Each direction runs its own *mode* (``sniff``, ``lines``, ``tls``, ``nfc``,
``opaque``) and hands the rest of its bytes to the next mode when the current one
says the layer ended, the way Zeek's IMAP analyzer hands a StartTLS stream to its
TLS child.  A later inner parser (decrypted TLS, RFB, full NFC) plugs in as one
more mode without touching the others.  The mode chooses by content, not by
port, so TLS on an unusual port or a capture that starts mid-stream still parses.

Memory per session is bounded: TLS record metadata is kept in compact arrays up
to ``max_records`` (counters continue past it), record bodies are never buffered.
"""

from __future__ import annotations

from array import array
from collections import Counter

from .. import decrypt
from ..net.flows import C2S, S2C
from ..proto import nfc as nfcmod
from ..proto import tls as tlsmod
from ..proto.authd import (
    GREETING_PREFIX,
    Banner,
    Dialogue,
    LineBuffer,
    looks_like_line,
    parse_banner,
)
from .facts import ClientHelloInfo, Handshake, HelloNames, Interner, ServerHelloInfo, Weird  # noqa: F401  (re-exported)
from .midstream import MidstreamSync, find_record_chain

MAX_RECORDS = 50_000
MAX_NFC_EVENTS = 200
MAX_WEIRD_PER_SESSION = 100
MAX_ALERTS = 100  # TLS alerts kept per handshake (and without one)
MAX_HANDSHAKES = 32  # TLS handshakes kept per session
RFB_PREFIX = b"RFB 0"


def side_untouched(side: "_Side") -> bool:
    return side.tls is None and side.nfc is None and side.mode == "sniff"


class _Sink:
    """Adapter the reassembler writes into; one per direction."""

    __slots__ = ("session", "from_client")

    def __init__(self, session: "Session", from_client: bool) -> None:
        self.session = session
        self.from_client = from_client

    def data(self, data: bytes, ts: float, frame: int) -> None:
        self.session._data(self.from_client, data, ts, frame)

    def gap(self, nbytes: int, ts: float, frame: int) -> None:
        self.session._gap(self.from_client, nbytes, ts, frame)


class _Side:
    """Parser state of one direction."""

    __slots__ = ("mode", "lines", "tls", "nfc", "opaque_bytes", "hs", "app_since_hs", "inner", "clear_bytes",
                 "sniff_buf", "midstream_skipped", "sync")

    def __init__(self) -> None:
        self.mode = "sniff"
        self.lines = LineBuffer()
        self.tls: tlsmod.TlsDirection | None = None
        self.nfc: nfcmod.NfcDirection | None = None
        self.opaque_bytes = 0
        self.hs = 0  # handshake index this direction is in
        self.app_since_hs = 0  # application-data records since this direction's last hello
        self.inner: str | None = None
        self.clear_bytes = 0
        self.sniff_buf = b""
        self.midstream_skipped: int | None = None  # bytes before the first record boundary found
        self.sync: MidstreamSync | None = None  # collecting a mid-way stream until records are found


_NO_RECORDS = {code: array(code) for code in "dqbBl"}  # shared, never appended to: a session without records


def no_records(arr: array) -> bool:
    """True for the shared empty arrays of a session that saw no TLS record."""
    return arr is _NO_RECORDS.get(arr.typecode)


class Session:
    """Application-level analysis of one TCP connection.

    Slotted, and its record arrays are allocated at the first TLS record: a connection attempt
    that never carries a byte (a SYN flood) costs a few hundred bytes, not kilobytes."""

    __slots__ = ("app_bytes", "app_records", "banner", "banner_frame", "banner_ts", "clear_after_tls_frame",
                 "clear_after_tls_ts", "client_sink", "conn", "dialogue", "handshakes", "intern", "max_records",
                 "midstream_alerts", "nfc_aio_types", "nfc_data_bytes", "nfc_events", "nfc_message_types",
                 "nfc_paths", "rec_dir", "rec_frame", "rec_hs", "rec_len", "rec_ts", "rec_type",
                 "records_dropped", "records_total", "server_sink", "sides", "tls_ended_in_clear", "weird",
                 "weird_total", "alerts_dropped", "handshakes_dropped", "decryption")

    def __init__(self, conn, show_secrets: bool = False, max_records: int = MAX_RECORDS,
                 intern: Interner | None = None, keylog=None, keep_plaintext: bool = False) -> None:
        self.conn = conn
        self.intern = intern or Interner()
        self.client_sink = _Sink(self, True)
        self.server_sink = _Sink(self, False)
        self.banner: Banner | None = None
        self.banner_ts: float | None = None
        self.banner_frame: int | None = None
        self.dialogue = Dialogue(show_secrets=show_secrets)
        self.sides = (_Side(), _Side())  # indexed by from_client: [False] server, [True] client
        self.handshakes: list[Handshake] = []
        self.max_records = max_records
        # TLS record metadata, struct-of-arrays: time, frame, direction, content type, length, handshake
        self.rec_ts = _NO_RECORDS["d"]  # replaced by fresh arrays at the first record
        self.rec_frame = _NO_RECORDS["q"]
        self.rec_dir = _NO_RECORDS["b"]
        self.rec_type = _NO_RECORDS["B"]
        self.rec_len = _NO_RECORDS["l"]
        self.rec_hs = _NO_RECORDS["b"]
        self.records_total = 0
        self.records_dropped = 0
        self.app_records = [0, 0]
        self.app_bytes = [0, 0]
        self.tls_ended_in_clear = False  # a direction continued without TLS after a handshake
        self.clear_after_tls_ts: float | None = None
        self.clear_after_tls_frame: int | None = None
        self.nfc_message_types: Counter = Counter()
        self.nfc_aio_types: Counter = Counter()
        self.nfc_events: list = []
        self.nfc_paths: list[str] = []
        self.nfc_data_bytes = 0
        self.weird: list[Weird] = []
        self.weird_total = 0
        self.midstream_alerts: list[tuple] = []
        self.alerts_dropped = 0
        self.handshakes_dropped = 0
        self.decryption = decrypt.attach(self, keylog, show_secrets, keep_plaintext) if keylog else None

    # -- plumbing ------------------------------------------------------------------------

    def release(self) -> None:
        """The connection's record is made: let go of the connection and the sinks that point
        back here (``flows.Connection.release``), so nothing but reference counts frees it."""
        self.conn = None
        self.client_sink = self.server_sink = None
        self.sides = ()

    def _new_record_arrays(self) -> None:
        self.rec_ts, self.rec_frame, self.rec_dir = array("d"), array("q"), array("b")
        self.rec_type, self.rec_len, self.rec_hs = array("B"), array("l"), array("b")

    def weird_event(self, ts: float, frame: int, kind: str, detail: str) -> None:
        self.weird_total += 1
        if len(self.weird) < MAX_WEIRD_PER_SESSION:
            self.weird.append(Weird(ts, frame, kind, detail, self.conn.uid, self.conn.source))

    def _data(self, from_client: bool, data: bytes, ts: float, frame: int) -> None:
        side = self.sides[from_client]
        while data:
            mode = side.mode
            if mode == "sniff":
                data = self._sniff(side, from_client, data, ts, frame)
            elif mode == "lines":
                data = self._lines(side, from_client, data, ts, frame)
            elif mode == "tls":
                data = self._tls(side, from_client, data, ts, frame)
            elif mode == "nfc":
                self._nfc(side, from_client, data, ts, frame)
                data = b""
            else:
                side.opaque_bytes += len(data)
                if side.tls is None or side.inner is not None:
                    side.clear_bytes += len(data)
                data = b""

    def _gap(self, from_client: bool, nbytes: int, ts: float, frame: int) -> None:
        side = self.sides[from_client]
        who = "client" if from_client else "server"
        if side.mode == "tls" and side.tls is not None:
            self._tls_events(side, from_client, side.tls.gap(nbytes, ts, frame))
            return
        if side.mode == "nfc" and side.nfc is not None:
            self._nfc_events(side.nfc.gap(nbytes, ts, frame))
            return
        if side.mode == "sniff" and (side.sync is not None or (self._midstream(from_client) and not side.sniff_buf)):
            if side.sync is None:
                side.sync = MidstreamSync()
            side.sync.gap(nbytes)  # a hole in what is being searched for record boundaries
            return
        self.weird_event(ts, frame, "content_gap", f"{nbytes} {who} bytes missing from the capture in {side.mode} mode")
        if side.mode == "lines":
            held = side.lines
            pending = held.pending
            # the bytes after the hole may be the rest of the cut line: swallowed when it could carry a secret
            secret = bool(pending) and self.dialogue.tail_may_be_secret(from_client, pending)
            if pending:  # keep what arrived of a line cut by the snapshot length (often the banner)
                self._line(from_client, pending.rstrip(b"\r"), held.ts, held.frame, True)
            held.gap(discard=secret)
        elif side.mode == "sniff":
            side.sniff_buf = b""

    # -- mode: sniff (decide what the next bytes are) --------------------------------------

    def _midstream(self, from_client: bool) -> bool:
        """No SYN (client) / SYN-ACK (server) seen: the capture began inside this stream."""
        d = self.conn.orig if from_client else self.conn.resp
        return d.isn is None and side_untouched(self.sides[from_client])

    def _sniff(self, side: _Side, from_client: bool, data: bytes, ts: float, frame: int) -> bytes:
        if side.sync is not None or (self._midstream(from_client) and not side.sniff_buf
                                     and not looks_like_line(data) and not nfcmod.looks_like_nfc(data)):
            # the capture began inside a TLS stream: find where records start, treat them as encrypted
            if side.sync is None:
                side.sync = MidstreamSync()
            side.sync.data(data, ts, frame)
            self._try_sync(side, from_client, ts, frame)
            return b""
        data = side.sniff_buf + data
        side.sniff_buf = b""
        if len(data) < 5 and not data.startswith(b"2") and not data[:1].isalpha():
            side.sniff_buf = data
            return b""
        if tlsmod.plausible_record_header(data):
            self._enter_tls(side, from_client)
        elif side.tls is not None and nfcmod.looks_like_nfc(data):
            side.mode = "nfc"
            side.inner = "NFC"
            side.nfc = nfcmod.NfcDirection("client" if from_client else "server")
        elif data.startswith(RFB_PREFIX):
            side.mode = "opaque"
            side.inner = "RFB"
        elif looks_like_line(data) or data.startswith(GREETING_PREFIX[:4]):
            side.mode = "lines"
        elif nfcmod.looks_like_nfc(data):
            side.mode = "nfc"
            side.inner = "NFC"
            side.nfc = nfcmod.NfcDirection("client" if from_client else "server")
        else:
            side.mode = "opaque"
            if side.tls is None:
                who = "client" if from_client else "server"
                self.weird_event(ts, frame, "unrecognised_stream",
                                 f"{who} bytes are neither authd lines, TLS nor NFC (starts {data[:8].hex()})")
        if side.tls is not None and side.mode != "tls" and not self.tls_ended_in_clear:
            self.tls_ended_in_clear = True
            self.clear_after_tls_ts, self.clear_after_tls_frame = ts, frame
        return data

    def _try_sync(self, side: _Side, from_client: bool, ts: float, frame: int, links: int = 3) -> None:
        """Look for chained record headers in what was collected; on success replay it into a
        TLS parser (holes become gaps the parser can step over); give up past the window."""
        sync = side.sync
        at = sync.find(links)
        if at is None:
            if not sync.full and links > 1:
                return
            side.sync = None
            side.mode = "opaque"
            side.opaque_bytes += sync.known
            self.weird_event(ts, frame, "midstream_no_sync",
                             f"no TLS record boundary in the first {sync.known} bytes of a stream seen mid-way")
            return
        side.sync = None
        self._enter_tls(side, from_client)
        side.tls.mark_encrypted()
        side.midstream_skipped = at
        pos = at
        for off, buf, pts, pframe in sync.pieces:
            end = off + len(buf)
            if end <= pos:
                continue
            start = max(off, pos)
            chunk = bytes(buf[start - off:])
            if side.mode != "tls":  # the stream left TLS during the replay: the rest goes on as usual
                self._data(from_client, chunk, pts, pframe)
            else:
                if start > pos:
                    self._tls_events(side, from_client, side.tls.gap(start - pos, pts, pframe))
                rest = self._tls_events(side, from_client, side.tls.feed(chunk, pts, pframe)) if side.mode == "tls" else chunk
                if rest:
                    self._data(from_client, rest, pts, pframe)
            pos = end
        if sync.end > pos and side.mode == "tls":
            self._tls_events(side, from_client, side.tls.gap(sync.end - pos, ts, frame))

    def _enter_tls(self, side: _Side, from_client: bool) -> None:
        side.mode = "tls"
        if side.tls is None or side.tls.ended:
            side.tls = tlsmod.TlsDirection("client" if from_client else "server")

    # -- mode: authd lines -------------------------------------------------------------------

    def _lines(self, side: _Side, from_client: bool, data: bytes, ts: float, frame: int) -> bytes:
        # an SSL daemon's stream turns into TLS at a line boundary
        if not side.lines.pending and not side.lines.skipping and tlsmod.plausible_record_header(data):
            side.mode = "sniff"
            side.lines.judge = False  # records, not the tail of a line, followed the gap
            return data
        consumed = 0
        lb = side.lines
        while consumed < len(data):
            nl = data.find(b"\n", consumed)
            piece = data[consumed:] if nl < 0 else data[consumed:nl + 1]
            consumed += len(piece)
            for raw, lts, lframe, truncated in lb.feed(piece, ts, frame):
                self._line(from_client, raw, lts, lframe, truncated)
            while lb.resyncs:
                who = "client" if from_client else "server"
                self.weird_event(ts, frame, "line_resync", f"{lb.resyncs.pop(0)} {who} bytes after missing data "
                                 "skipped up to the next line end (the tail of a line whose start is missing)")
            if nl >= 0 and consumed < len(data):
                rest = data[consumed:]
                if tlsmod.plausible_record_header(rest) or side.mode != "lines":
                    if side.mode == "lines":
                        side.mode = "sniff"
                    return rest
        return b""

    def _line(self, from_client: bool, raw: bytes, ts: float, frame: int, truncated: bool,
              partial: bool = False) -> None:
        """``partial``: the stream ended inside this line (the dialogue treats it as cut)."""
        if truncated:
            self.weird_event(ts, frame, "line_cut", f"authd line cut after {len(raw)} bytes (too long, or bytes missing)")
        truncated = truncated or partial
        if from_client:
            self.dialogue.client_line(raw, ts, frame, truncated)
            return
        if self.banner is None and raw.startswith(GREETING_PREFIX[:4]):
            text = raw.decode("latin-1")
            banner = parse_banner(text)
            if banner is not None:
                self.banner, self.banner_ts, self.banner_frame = self.intern(banner), ts, frame
                self.dialogue.server_line(raw, ts, frame, truncated)
                return
        before = self.dialogue.connect_ok
        self.dialogue.server_line(raw, ts, frame, truncated)
        if before is None and self.dialogue.connect_ok:
            # plaintext hand-off: whatever follows on both sides is the inner protocol
            for side in (self.sides[1], self.sides[0]):
                if side.mode == "lines" and not side.lines.pending and not side.lines.skipping:
                    side.mode = "sniff"
                    side.inner = "after_connect"

    # -- mode: TLS -----------------------------------------------------------------------------

    def _tls(self, side: _Side, from_client: bool, data: bytes, ts: float, frame: int) -> bytes:
        rest = self._tls_events(side, from_client, side.tls.feed(data, ts, frame))
        if self.decryption is not None:  # the record bytes, also to the decryptor (issue 9)
            self.decryption.data(from_client, data[:len(data) - len(rest)], ts, frame)
        return rest

    def _handshake(self, index: int, ts: float, frame: int) -> Handshake:
        if index > MAX_HANDSHAKES:  # a stream of hellos: the later handshakes are counted, not kept
            if self.handshakes_dropped < index - MAX_HANDSHAKES:
                self.handshakes_dropped = index - MAX_HANDSHAKES
            return Handshake(index, ts, frame)
        while len(self.handshakes) < index:
            self.handshakes.append(Handshake(len(self.handshakes) + 1, ts, frame))
        return self.handshakes[index - 1]

    def _start_handshake(self, side: _Side, ts: float, frame: int) -> Handshake:
        side.hs += 1
        side.app_since_hs = 0
        return self._handshake(side.hs, ts, frame)

    def _tls_events(self, side: _Side, from_client: bool, events: list) -> bytes:
        rest = b""
        d = C2S if from_client else S2C
        for ev in events:
            kind = type(ev)
            if kind is tlsmod.TlsRecord:
                self.records_total += 1
                ct = ev.content_type
                if ct == 22 and (side.hs == 0 or side.app_since_hs):
                    # a handshake record where a handshake can begin: the first hello, or a new
                    # hello on the raw stream after protected data (the hand-off's TLS #2).
                    # Counted from the record header, so a hello cut by the snapshot length counts.
                    self._start_handshake(side, ev.ts, ev.frame)
                elif ct == 23:
                    side.app_since_hs += 1
                    self.app_records[d] += 1
                    self.app_bytes[d] += ev.length
                    if side.hs:
                        hs = self._handshake(side.hs, ev.ts, ev.frame)
                        if from_client:
                            hs.client_app_records += 1
                        else:
                            hs.server_app_records += 1
                if len(self.rec_ts) < self.max_records:
                    if not self.rec_ts:
                        self._new_record_arrays()
                    self.rec_ts.append(ev.ts)
                    self.rec_frame.append(ev.frame)
                    self.rec_dir.append(d)
                    self.rec_type.append(ct)
                    self.rec_len.append(ev.length)
                    self.rec_hs.append(min(side.hs, 127))
                else:
                    self.records_dropped += 1
            elif kind is tlsmod.TlsHandshakeMessage:
                parsed = ev.parsed
                if isinstance(parsed, tlsmod.ClientHello) and from_client:
                    hs = self._handshake(side.hs, ev.ts, ev.frame) if side.hs else self._start_handshake(side, ev.ts, ev.frame)
                    hs.client_hello = self.intern(ClientHelloInfo.of(parsed))
                elif isinstance(parsed, tlsmod.ServerHello) and not from_client:
                    hs = self._handshake(side.hs, ev.ts, ev.frame) if side.hs else self._start_handshake(side, ev.ts, ev.frame)
                    hs.server_hello = self.intern(ServerHelloInfo.of(parsed))
                    hs.server_hello_frame = ev.frame
                    if parsed.selected_version == 0x0304:
                        side.tls.mark_encrypted()
                elif isinstance(parsed, list) and not from_client:
                    hs = self._handshake(max(side.hs, 1), ev.ts, ev.frame)
                    hs.certificates = [self.intern(c) for c in parsed]
                    hs.certificate_frame = ev.frame
            elif kind is tlsmod.TlsAlert:
                who = "client" if from_client else "server"
                alert = (ev.ts, ev.frame, who, ev.level, ev.description, ev.encrypted)
                kept = self._handshake(side.hs, ev.ts, ev.frame).alerts if side.hs else self.midstream_alerts
                if len(kept) < MAX_ALERTS:  # else a stream of alerts: counted, not kept
                    kept.append(alert)  # (without a handshake: a stream picked up mid-way)
                else:
                    self.alerts_dropped += 1
            elif kind is tlsmod.TlsEnd:
                side.mode = "sniff"
                rest = ev.remainder
            elif kind is tlsmod.TlsWeird:
                self.weird_event(ev.ts, ev.frame, f"tls_{ev.kind}", ev.detail)
        return rest

    # -- mode: cleartext NFC -------------------------------------------------------------------

    def _nfc(self, side: _Side, from_client: bool, data: bytes, ts: float, frame: int) -> None:
        side.clear_bytes += len(data)
        self._nfc_events(side.nfc.feed(data, ts, frame), from_client)

    def _nfc_events(self, events: list, from_client: bool | None = None) -> None:
        for ev in events:
            kind = type(ev)
            if kind is nfcmod.NfcMessage:
                self.nfc_message_types[ev.name] += 1
                path = ev.fields.get("path") if ev.fields else None
                if path and len(self.nfc_paths) < 50:
                    self.nfc_paths.append(path)
            elif kind is nfcmod.NfcAio:
                self.nfc_aio_types[ev.name] += 1
                path = ev.fields.get("path") if ev.fields else None
                if path and len(self.nfc_paths) < 50:
                    self.nfc_paths.append(path)
            elif kind is nfcmod.NfcWeird:
                self.weird_event(ev.ts, ev.frame, f"nfc_{ev.kind}", ev.detail)
                continue
            if len(self.nfc_events) < MAX_NFC_EVENTS:
                self.nfc_events.append((from_client, ev))

    def finish(self) -> None:
        """The connection ended: parse what was held back and report what was cut short."""
        ts, frame = self.conn.end, self.conn.last_frame
        for from_client, side in ((True, self.sides[1]), (False, self.sides[0])):
            if side.sync is not None:  # the stream ended before three chained headers: accept one
                side.sync.scanned, side.sync.retry = 0, []
                self._try_sync(side, from_client, ts, frame, links=1)
            if side.sniff_buf:
                held, side.sniff_buf = side.sniff_buf, b""
                if self._midstream(from_client) and find_record_chain(held, links=1) is not None:
                    at = find_record_chain(held, links=1)
                    self._enter_tls(side, from_client)
                    side.tls.mark_encrypted()
                    side.midstream_skipped = at
                    held = held[at:]
                else:
                    side.mode = "lines" if looks_like_line(held) else "opaque"
                self._data(from_client, held, ts, frame)
            if side.mode == "tls" and side.tls is not None and not side.tls.ended:
                self._tls_events(side, from_client, side.tls.finish(ts, frame))
            if side.mode == "lines" and side.lines.pending:
                raw = side.lines.pending
                side.lines = LineBuffer()
                self._line(from_client, raw.rstrip(b"\r"), ts, frame, False, partial=True)

    # -- summaries -----------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        """plain | tls | tls+tls2 | tls+clear | none: how the stream was carried."""
        n = len(self.handshakes)
        if n == 0 and all(s.tls is None for s in (self.sides[1], self.sides[0])):
            if self.dialogue.lines or any(s.opaque_bytes or s.clear_bytes or s.nfc for s in (self.sides[1], self.sides[0])):
                return "plain"
            return "none"
        if self.tls_ended_in_clear:
            return "tls+clear"
        return "tls+tls2" if n >= 2 else "tls"

    @property
    def inner_protocol(self) -> str | None:
        for s in (self.sides[1], self.sides[0]):
            if s.inner in ("NFC", "RFB"):
                return s.inner
        return None

    @property
    def nfc_data(self) -> int:
        return sum(s.nfc.data_bytes for s in (self.sides[1], self.sides[0]) if s.nfc is not None)
