"""What the plaintext of each decrypted handshake is, and who reads it.

protocol.md §3-§5: TLS #1 carries authd lines (or, for SOAP-over-902, HTTP); after
``200 Connect`` TLS #2 carries the console's RFB (client token first) or NFC (264-byte
messages / AIO frames).  This module sends each handshake's application data to the right
parser: authd lines go back to the session's dialogue (so redaction and login matching are
those of plaintext daemons), HTTP to :mod:`..proto.http`, RFB to :mod:`..proto.rfb`, NFC to
the existing NFC parser.  Everything kept is bounded (``MAX_ROWS`` rows per table, counters
beyond); key event contents are typed secrets, kept only with ``show_secrets``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Callable

from ..proto.http import HttpStream, looks_like_http
from ..proto.rfb import RfbParser
from ..proto import tls as tlsmod
from .keylog import KeyLog
from .stream import ConnectionDecryptor

from ..proto import nfc as nfcmod
from ..proto.authd import Dialogue, LineBuffer

MAX_ROWS = 20_000
REDACTED = "<redacted>"


class DecryptedSession:
    """Decryption of one connection and what its plaintext said.

    ``on_line(from_client, raw, ts, frame, truncated)`` gets each authd line of TLS #1;
    ``on_certificates(handshake, [CertificateInfo], ts, frame)`` the server certificates read
    from an encrypted TLS 1.3 handshake; ``on_weird(ts, frame, kind, detail)`` problems."""

    def __init__(self, keylog: KeyLog, on_line: Callable, on_weird: Callable, on_certificates: Callable,
                 show_secrets: bool = False, keep_plaintext: bool = False) -> None:
        self.on_line, self.on_weird, self.on_certs = on_line, on_weird, on_certificates
        self.show_secrets = show_secrets
        self.decryptor = ConnectionDecryptor(keylog, self._plain, on_weird, self._certificates)
        self.modes: dict[tuple[int, bool], str] = {}
        self.lines = {True: LineBuffer(), False: LineBuffer()}
        self.http = {True: HttpStream(True), False: HttpStream(False)}
        self.http_messages: list = []
        self.rfb: RfbParser | None = None
        self.rfb_handshake: int | None = None
        self.rfb_messages: list = []
        self.rfb_counts: Counter = Counter()
        self.rfb_encodings: Counter = Counter()  # FramebufferUpdate rectangles by encoding
        self.nfc: dict[bool, object] = {}
        self.nfc_events: list = []
        self.nfc_counts: Counter = Counter()
        self.nfc_paths: list[str] = []
        self.inner: dict[int, str] = {}  # handshake -> authd | http | rfb | nfc | opaque
        # keep_plaintext: True keeps every chunk (tests); an export.StreamExport writes them as they come
        self.plaintext: list | None = [] if keep_plaintext is True else None
        self.export = None  # export.SessionExport, set by ``attach``
        self.visible: Dialogue | None = None  # the lines readable on the wire (``attach``)
        self.first_plain: dict[int, float] = {}

    # -- plumbing from the session -----------------------------------------------------------

    def data(self, from_client: bool, data: bytes, ts: float, frame: int) -> None:
        self.decryptor.data(from_client, data, ts, frame)

    def gap(self, from_client: bool, nbytes: int, ts: float, frame: int) -> None:
        self.decryptor.gap(from_client, nbytes, ts, frame)

    @property
    def handshakes(self):
        return self.decryptor.handshakes

    @property
    def decrypted(self) -> bool:
        return any(h.records[0] or h.records[1] for h in self.decryptor.handshakes)

    # -- plaintext ---------------------------------------------------------------------------

    def _certificates(self, hs: int, ders: list[bytes], ts: float, frame: int) -> None:
        infos = []
        for der in ders:
            try:
                infos.append(tlsmod.certificate_summary(der))
            except Exception:  # noqa: BLE001 - a certificate the summary cannot read is left out
                continue
        if infos:
            self.on_certs(hs, infos, ts, frame)

    def _mode(self, hs: int, from_client: bool, data: bytes) -> str:
        key = (hs, from_client)
        mode = self.modes.get(key)
        if mode is not None:
            return mode
        if hs == 1:
            other = self.modes.get((1, not from_client))
            mode = "http" if looks_like_http(data) or other == "http" else "lines"
            self.inner.setdefault(1, "http" if mode == "http" else "authd")
        else:
            kind = self.inner.get(hs)
            if kind is None:
                if from_client and nfcmod.looks_like_nfc(data):
                    kind = "nfc"
                elif looks_like_http(data):
                    kind = "http"
                else:
                    kind = "rfb"
                self.inner[hs] = kind
            mode = kind
            if kind == "rfb" and self.rfb is None:
                self.rfb = RfbParser(mks=not (not from_client and data.startswith(b"RFB 0")))
                self.rfb_handshake = hs
        self.modes[key] = mode
        return mode

    def _plain(self, hs: int, from_client: bool, content_type: int, data: bytes, ts: float, frame: int) -> None:
        if content_type != 23 or not data:
            return
        self.first_plain.setdefault(hs, ts)
        mode = self._mode(hs, from_client, data)
        if mode == "lines" and not self.lines[from_client].pending and looks_like_http(data):
            mode = self.modes[(hs, from_client)] = "http"  # SOAP after the login lines (protocol.md §6)
            self.inner[hs] = "authd+http"
        if self.plaintext is not None:
            self.plaintext.append((hs, from_client, ts, frame, data, mode))
        export = self.export
        if export is not None:
            export.chunk(hs, from_client, ts, frame, data, mode, self.inner.get(hs, "opaque"),
                         self.rfb is not None and self.rfb.mks)
        if mode == "lines":
            for raw, lts, lframe, truncated in self.lines[from_client].feed(data, ts, frame):
                line = self.on_line(from_client, raw, lts, lframe, truncated)
                if export is not None and line is not None:
                    export.line(hs, from_client, line.text, lts, lframe, self.inner.get(hs, "authd"))
        elif mode == "http":
            self._http(self.http[from_client].feed(data, ts, frame), hs)
        elif mode == "rfb":
            if self.rfb is not None and hs == self.rfb_handshake:
                self._rfb(hs, self.rfb.feed(from_client, data, ts, frame))
        elif mode == "nfc":
            nfc = self.nfc.get(from_client)
            if nfc is None:
                nfc = self.nfc[from_client] = nfcmod.NfcDirection("client" if from_client else "server")
            self._nfc(hs, from_client, nfc.feed(data, ts, frame))

    def _http(self, messages: list, hs: int) -> None:
        for m in messages:
            if len(self.http_messages) < MAX_ROWS:
                self.http_messages.append((hs, m))

    def _rfb(self, hs: int, messages: list) -> None:
        for m in messages:
            self.rfb_counts[(m.from_client, m.name)] += 1
            if m.name == "FramebufferUpdate":
                self.rfb_encodings.update(m.fields.get("encodings", {}))
            if len(self.rfb_messages) < MAX_ROWS:
                if m.name == "KeyEvent" and not self.show_secrets:
                    m = type(m)(m.ts, m.frame, m.from_client, m.name, m.length,
                                {"down": m.fields["down"], "keysym": REDACTED})
                self.rfb_messages.append((hs, m))
        while self.rfb.weird:
            self.on_weird(*self.rfb.weird.pop(0))

    def _nfc(self, hs: int, from_client: bool, events: list) -> None:
        for ev in events:
            if isinstance(ev, nfcmod.NfcWeird):
                self.on_weird(ev.ts, ev.frame, f"nfc_{ev.kind}", f"decrypted TLS #{hs}: {ev.detail}")
                continue
            self.nfc_counts[ev.name] += 1
            path = ev.fields.get("path") if ev.fields else None
            if path and len(self.nfc_paths) < 50:
                self.nfc_paths.append(path)
            if len(self.nfc_events) < MAX_ROWS:
                self.nfc_events.append((hs, from_client, ev))

    def finish(self, ts: float, frame: int) -> None:
        self.decryptor.close()  # the record keeps the summary, not keys and buffers
        export, self.export = self.export, None
        for fc, stream in self.http.items():
            if any(m == "http" and f == fc for (_, f), m in self.modes.items()):
                self._http(stream.finish(), 1)
        for fc, lb in self.lines.items():
            if lb.pending:
                raw = lb.pending
                self.lines[fc] = LineBuffer()
                line = self.on_line(fc, raw.rstrip(b"\r"), ts, frame, True)
                if export is not None and line is not None:
                    export.line(1, fc, line.text, ts, frame, self.inner.get(1, "authd"))
        if export is not None:
            export.finish()

    # -- summary -----------------------------------------------------------------------------

    @property
    def nfc_data_bytes(self) -> int:
        return sum(n.data_bytes for n in self.nfc.values())

    def rfb_summary(self) -> dict | None:
        if self.rfb is None:
            return None
        r = self.rfb
        count = self.rfb_counts
        keys = [m for _, m in self.rfb_messages if m.name == "KeyEvent"]
        duration = None
        if keys:
            duration = max(m.ts for m in keys) - min(m.ts for m in keys)
        return {
            "handshake": self.rfb_handshake,
            "width": r.width, "height": r.height, "name": r.name,
            "pixel_format": r.pixel_format.describe() if r.pixel_format else None,
            "encodings": [m.fields["encodings"] for _, m in self.rfb_messages if m.name == "SetEncodings"][-1:] or None,
            "framebuffer_updates": count[(False, "FramebufferUpdate")],
            "rectangles": dict(self.rfb_encodings),
            "key_events": count[(True, "KeyEvent")],
            "pointer_events": count[(True, "PointerEvent")],
            "update_requests": count[(True, "FramebufferUpdateRequest")],
            "key_events_per_s": round(len(keys) / duration, 3) if duration else None,
            "desync": r.client.stopped or r.server.stopped,
        }

    def to_dict(self) -> dict:
        return {
            "handshakes": self.decryptor.summary(),
            "inner": {str(k): v for k, v in sorted(self.inner.items())},
            "rfb": self.rfb_summary(),
            "nfc": None if not self.nfc_counts else {
                "operations": dict(self.nfc_counts), "paths": self.nfc_paths, "data_bytes": self.nfc_data_bytes,
            },
            "http": [http_dict(hs, m) for hs, m in self.http_messages],
        }


def http_dict(hs: int, m) -> dict:
    return {"handshake": hs, "ts": m.ts, "frame": m.frame,
            "direction": "client_to_server" if m.from_client else "server_to_client",
            "method": m.method, "target": m.target, "status": m.status, "soap_action": m.soap_action,
            "content_type": m.content_type, "body_bytes": m.body_bytes, "credentials": m.credentials}


class _GapTap:
    """The session's stream sink, passing on everything and telling the decryptor of capture gaps
    inside TLS (the other modes have their own gap handling)."""

    __slots__ = ("sink", "decryption", "side")

    def __init__(self, sink, decryption: "DecryptedSession", side) -> None:
        self.sink, self.decryption, self.side = sink, decryption, side

    def data(self, data: bytes, ts: float, frame: int) -> None:
        self.sink.data(data, ts, frame)

    def gap(self, nbytes: int, ts: float, frame: int) -> None:
        if self.side.mode == "tls":
            self.decryption.gap(self.sink.from_client, nbytes, ts, frame)
        self.sink.gap(nbytes, ts, frame)


def attach(session, keylog: KeyLog, show_secrets: bool = False, keep_plaintext: bool = False) -> DecryptedSession:
    """Hook decryption into an ``analyzers.session.Session``: the session's ``dialogue`` then holds
    the visible and the decrypted lines (decrypted ones marked), ``decryption.visible`` only what
    was readable on the wire (the classifier's view); certificates read from an encrypted TLS 1.3
    handshake fill the handshake's when it had none; capture gaps inside TLS reach the decryptor."""
    full, visible = session.dialogue, Dialogue(show_secrets=show_secrets)
    base = {True: full.client_line, False: full.server_line}

    def mirrored(from_client: bool):
        def line(raw, ts, frame, truncated=False):
            (visible.client_line if from_client else visible.server_line)(raw, ts, frame, truncated)
            return base[from_client](raw, ts, frame, truncated)
        return line

    full.client_line, full.server_line = mirrored(True), mirrored(False)

    def on_line(from_client: bool, raw: bytes, ts: float, frame: int, truncated: bool):
        line = base[from_client](raw, ts, frame, truncated)
        if full.lines:
            full.lines[-1] = dataclasses.replace(full.lines[-1], decrypted=True)
        return line  # as the dialogue shows it (secrets redacted unless asked)

    def on_certificates(index: int, infos: list, ts: float, frame: int) -> None:
        hs = session._handshake(index, ts, frame)
        if not hs.certificates:
            hs.certificates = [session.intern(c) for c in infos]
            hs.certificate_frame = frame

    dec = DecryptedSession(keylog, on_line, session.weird_event, on_certificates, show_secrets, keep_plaintext)
    dec.visible = visible
    if keep_plaintext and keep_plaintext is not True:
        dec.export = keep_plaintext.session(session)
    session.client_sink = _GapTap(session.client_sink, dec, session.sides[True])
    session.server_sink = _GapTap(session.server_sink, dec, session.sides[False])
    return dec
