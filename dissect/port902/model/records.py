"""Finished connections -> compact session records (end of stage 3).

When a connection ends (FIN/RST, idle timeout or end of capture) its parsers are
dropped and only a :class:`SessionRecord` stays: the facts the reports, the
classifier and the correlator need, in a shape that costs little per session, so
captures with hundreds of thousands of connection attempts stay in memory.
``to_dict`` is the JSON contract (README, "JSON output").
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field, fields
from typing import Any, Sequence, cast

from ..analyzers.session import Handshake, HelloNames, Session, Weird
from ..net.flows import DIRECTIONS, Connection, fmt_ip, hostport
from ..proto import tls as tlsmod
from ..proto.authd import REPLY_CODES, Banner, Line, LoginAttempt, guess_product
from ..proto.tls import CertificateInfo


@dataclass(frozen=True, slots=True)
class HandshakeRecord(HelloNames):
    """A TLS handshake as published once its connection ended: frozen, lists made tuples.

    The live, growing form is :class:`~..analyzers.session.Handshake`; the same fields."""

    index: int
    ts: float
    frame: int
    client_hello: Any = None  # analyzers.session.ClientHelloInfo
    server_hello: Any = None  # analyzers.session.ServerHelloInfo
    server_hello_frame: int | None = None
    certificates: tuple[CertificateInfo, ...] = ()
    certificate_frame: int | None = None
    alerts: tuple[tuple[float, int, str, str | None, str | None, bool], ...] = ()
    client_app_records: int = 0
    server_app_records: int = 0

    @classmethod
    def of(cls, h: Handshake) -> HandshakeRecord:
        return cls(h.index, h.ts, h.frame, h.client_hello, h.server_hello, h.server_hello_frame,
                   tuple(h.certificates), h.certificate_frame, tuple(h.alerts),
                   h.client_app_records, h.server_app_records)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    uid: str
    source: str
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    start: float
    end: float
    first_frame: int
    last_frame: int
    state: str
    conn_state: str
    history: str
    roles_from: str
    syn_count: int
    syn_times: list[float]
    rst_frame: int | None
    packets: tuple[int, int]  # client->server, server->client
    bytes: tuple[int, int]  # in-order payload bytes (each byte once; gaps included)
    wire_bytes: tuple[int, int]  # payload bytes on the wire, retransmissions included
    retransmissions: tuple[int, int]
    out_of_order: tuple[int, int]
    gaps: tuple[int, int]
    gap_bytes: tuple[int, int]
    banner: Banner | None
    banner_frame: int | None
    dialogue: Sequence[Line]
    user: str | None
    login_outcome: str
    login_attempts: int
    logins_failed: int
    logins: Sequence[LoginAttempt]  # every PASS / XPAS with the reply matched to it, in order
    login_summary: str | None
    connect_kind: str | None
    connect_target: str | None
    connect_ok: bool | None
    commands: Sequence[str]
    handshakes: tuple[HandshakeRecord, ...]
    rec_ts: array
    rec_frame: array
    rec_dir: array
    rec_type: array
    rec_len: array
    rec_hs: array
    records_total: int
    records_dropped: int
    app_records: tuple[int, int]
    app_bytes: tuple[int, int]
    transport: str
    continued_in_clear: bool
    clear_after_tls_frame: int | None
    inner_protocol: str | None
    nfc_message_types: dict[str, int]
    nfc_aio_types: dict[str, int]
    nfc_paths: Sequence[str]
    nfc_data_bytes: int
    weird: Sequence[Weird]
    weird_total: int
    midstream_alerts: Sequence[tuple] = field(default_factory=list)
    connect_code: int | None = None  # reply code to the (last) CONNECT / PROXY
    connect_frame: int | None = None  # frame of the CONNECT / PROXY line
    connect_reply_frame: int | None = None
    failure: "Failure | None" = None  # set by summarize (failure_of)
    feature: str = "UNKNOWN"
    confidence: float | None = None
    reasons: list[str] = field(default_factory=list)
    inferred_dialogue: list[dict] = field(default_factory=list)  # TLS #1 read from record sizes
    inferred_logins: list[str] = field(default_factory=list)  # per PASS inside TLS: accepted/rejected/...
    handoff_from: str | None = None
    handoff_to: str | None = None
    handoff_gap_s: float | None = None
    dropped: dict[str, int] | None = None  # what the per-session caps left out: list name -> count
    decryption: Any = None  # decrypt.inner.DecryptedSession when a key log was given
    visible: dict | None = None  # the dialogue fields of what was readable on the wire (with a key log)
    feature_inferred: str | None = None  # the metadata verdict when decryption decided `feature`
    confidence_inferred: float | None = None
    fin_frames: tuple[int | None, int | None] = (None, None)  # first FIN of client, of server
    # archive runs (issue 11): the capture files the session's frame span crosses, each as
    # {"file", "first_frame", "last_frame"} in that file's own frame numbering; None for one file
    sources: list[dict] | None = None

    # -- derived -----------------------------------------------------------------------

    @property
    def client(self) -> str:
        return hostport(self.client_ip, self.client_port)

    @property
    def server(self) -> str:
        return hostport(self.server_ip, self.server_port)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def product(self) -> str | None:
        return guess_product(self.banner, self.server_port) if self.banner else None

    @property
    def tls_version(self) -> str | None:
        return self.handshakes[0].version if self.handshakes else None

    @property
    def tls_cipher(self) -> str | None:
        return self.handshakes[0].cipher if self.handshakes else None

    @property
    def server_cert_sha1(self) -> str | None:
        for hs in self.handshakes:
            if hs.certificates:
                return hs.certificates[0].sha1
        return None

    def records(self):
        """TLS record metadata as (ts, frame, direction, content_type, length, handshake) tuples."""
        return zip(self.rec_ts, self.rec_frame, self.rec_dir, self.rec_type, self.rec_len, self.rec_hs)

    # -- JSON contract -------------------------------------------------------------------

    def to_dict(self, records: bool = False) -> dict:
        b = self.banner
        d = {
            "uid": self.uid,
            "source": self.source,
            **({"sources": self.sources} if self.sources is not None else {}),
            "client": self.client,
            "server": self.server,
            "start": self.start,
            "end": self.end,
            "duration_s": round(self.duration_s, 6),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "state": self.state,
            "conn_state": self.conn_state,
            "history": self.history,
            "roles_from": self.roles_from,
            "syn_count": self.syn_count,
            "syn_times": self.syn_times,
            "rst_frame": self.rst_frame,
            "banner": None if b is None else {
                "text": b.text,
                "version": b.version,
                "ssl_required": b.ssl_required,
                "capabilities": list(b.capabilities),
                "product": self.product,
                "frame": self.banner_frame,
            },
            "tls": None if not (self.handshakes or self.transport.startswith("tls")) else {
                "version": self.tls_version,
                "cipher": self.tls_cipher,
                "server_cert_sha1": self.server_cert_sha1,
                "handshakes": len(self.handshakes),
                "continued_in_clear": self.continued_in_clear,
                "clear_after_tls_frame": self.clear_after_tls_frame,
                "handshake_details": [handshake_dict(h) for h in self.handshakes],
                "app_records": {"client_to_server": self.app_records[0], "server_to_client": self.app_records[1]},
                "app_bytes": {"client_to_server": self.app_bytes[0], "server_to_client": self.app_bytes[1]},
                "records_total": self.records_total,
                "records_kept": len(self.rec_ts),
                "alerts_without_handshake": [
                    {"ts": ts, "frame": fr, "from": who, "level": lvl, "description": desc, "encrypted": enc}
                    for ts, fr, who, lvl, desc, enc in self.midstream_alerts
                ],
            },
            "auth": None if not (self.dialogue or self.user) else {
                "user": self.user,
                "outcome": self.login_outcome,
                "summary": self.login_summary,
                "attempts": [a.to_dict() for a in self.logins],
                "failed": self.logins_failed,
                "connect": None if self.connect_kind is None else {
                    "kind": self.connect_kind, "target": self.connect_target, "ok": self.connect_ok,
                    "code": self.connect_code, "frame": self.connect_frame, "reply_frame": self.connect_reply_frame,
                },
                "commands": self.commands,
            },
            "failure": None if self.failure is None else self.failure.kind,
            "failure_frame": None if self.failure is None else self.failure.frame,
            "failure_reason": None if self.failure is None else self.failure.reason,
            "dialogue": [line_dict(ln) for ln in self.dialogue],
            "transport": self.transport,
            "inner_protocol": self.inner_protocol,
            "nfc": None if not (self.nfc_message_types or self.nfc_aio_types) else {
                "message_types": self.nfc_message_types,
                "aio_types": self.nfc_aio_types,
                "paths": self.nfc_paths,
                "data_bytes": self.nfc_data_bytes,
            },
            "feature": self.feature,
            "confidence": self.confidence,
            "reasons": self.reasons,
            "feature_inferred": self.feature_inferred,
            "confidence_inferred": self.confidence_inferred,
            "decryption": None if self.decryption is None else self.decryption.to_dict(),
            "inferred_dialogue": self.inferred_dialogue,
            "packets": {"client_to_server": self.packets[0], "server_to_client": self.packets[1]},
            "bytes": {"client_to_server": self.bytes[0], "server_to_client": self.bytes[1]},
            "wire_bytes": {"client_to_server": self.wire_bytes[0], "server_to_client": self.wire_bytes[1]},
            "tcp": {
                "retransmissions": list(self.retransmissions),
                "out_of_order": list(self.out_of_order),
                "gaps": list(self.gaps),
                "gap_bytes": list(self.gap_bytes),
            },
            "handoff": None if not (self.handoff_from or self.handoff_to) else {
                "from_session": self.handoff_from,
                "to_session": self.handoff_to,
                "gap_s": self.handoff_gap_s,
            },
            "weird": self.weird_total,
        }
        if self.dropped:  # only when a cap was reached: the document of an ordinary session is unchanged
            d["dropped"] = dict(self.dropped)
        if records:
            d["tls_records"] = [
                {"ts": ts, "frame": fr, "direction": DIRECTIONS[di], "content_type": tlsmod.CONTENT_TYPES.get(ct, ct),
                 "length": ln, "handshake": hs}
                for ts, fr, di, ct, ln, hs in self.records()
            ]
        return d


def line_dict(ln: Line) -> dict:
    return {
        "ts": ln.ts,
        "frame": ln.frame,
        "direction": "client_to_server" if ln.from_client else "server_to_client",
        "command": ln.verb,
        "code": ln.code,
        "text": ln.text,
        "decrypted": ln.decrypted,
    }


def handshake_dict(h: Handshake | HandshakeRecord) -> dict:
    ch, sh = h.client_hello, h.server_hello
    cert = h.certificates[0] if h.certificates else None
    return {
        "index": h.index,
        "ts": h.ts,
        "frame": h.frame,
        "client_hello": None if ch is None else {
            "legacy_version": tlsmod.version_name(ch.legacy_version),
            "offered_versions": [tlsmod.version_name(v) for v in ch.offered_versions],
            "sni": ch.server_name,
            "alpn": list(ch.alpn),
            "cipher_suites": [tlsmod.cipher_name(c) for c in ch.cipher_suites],
            "extensions": [tlsmod.EXTENSION_TYPES.get(t, t) for t in ch.extension_types],
            "ja3": ch.ja3_string,
            "ja3_hash": ch.ja3,
            "ja4": ch.ja4,
            "ja4_r": ch.ja4_r,
        },
        "server_hello": None if sh is None else {
            "version": tlsmod.version_name(sh.selected_version),
            "cipher": tlsmod.cipher_name(sh.cipher_suite),
            "frame": h.server_hello_frame,
        },
        "certificate": None if cert is None else {
            "subject": cert.subject,
            "issuer": cert.issuer,
            "not_before": None if cert.not_before is None else cert.not_before.isoformat(),
            "not_after": None if cert.not_after is None else cert.not_after.isoformat(),
            "sha1": cert.sha1,
            "sha256": cert.sha256,
            "frame": h.certificate_frame,
        },
        "alerts": [
            {"ts": ts, "frame": fr, "from": who, "level": lvl, "description": desc, "encrypted": enc}
            for ts, fr, who, lvl, desc, enc in h.alerts
        ],
        "app_records": {"client_to_server": h.client_app_records, "server_to_client": h.server_app_records},
    }


class _NoStream:
    """The reassembly counters of a direction that never carried a byte (a lazy connection's)."""

    delivered = wire_bytes = retransmissions = out_of_order = gaps = gap_bytes = 0


_NO_STREAM = _NoStream()
_BLANK: list[Session] = []  # the session of a connection that never carried a byte, made once


def _blank_session() -> Session:
    if not _BLANK:
        _BLANK.append(Session(None))
    return _BLANK[0]


def summarize(conn: Connection) -> SessionRecord:
    """Freeze a finished connection into a record; its parsers can then be dropped.

    A connection without a session (``flows.Connection`` made it lazily and no byte came)
    reads as a session that saw nothing."""
    blank = conn.session is None
    s: Session = _blank_session() if blank else cast(Session, conn.session)
    if s.decryption is not None:  # decrypted lines still held go to the dialogue first
        s.decryption.finish(conn.end, conn.last_frame)
    o, r = conn.orig, conn.resp
    dlg = s.dialogue
    oa = o.reasm if o.reasm is not None else _NO_STREAM
    ra = r.reasm if r.reasm is not None else _NO_STREAM
    rec = SessionRecord(
        uid=conn.uid,
        source=conn.source,
        client_ip=fmt_ip(conn.orig_ip),
        client_port=conn.orig_port,
        server_ip=fmt_ip(conn.resp_ip),
        server_port=conn.resp_port,
        start=conn.start,
        end=conn.end,
        first_frame=conn.first_frame,
        last_frame=conn.last_frame,
        state=conn.state,
        conn_state=conn.conn_state,
        history=conn.history,
        roles_from=conn.roles_from,
        syn_count=o.syn,
        syn_times=conn.syn_times[:16],
        rst_frame=conn.rst_frame,
        fin_frames=(conn.orig.fin_frame, conn.resp.fin_frame),
        packets=(o.packets, r.packets),
        bytes=(oa.delivered + oa.gap_bytes, ra.delivered + ra.gap_bytes),
        wire_bytes=(oa.wire_bytes, ra.wire_bytes),
        retransmissions=(oa.retransmissions, ra.retransmissions),
        out_of_order=(oa.out_of_order, ra.out_of_order),
        gaps=(oa.gaps, ra.gaps),
        gap_bytes=(oa.gap_bytes, ra.gap_bytes),
        banner=s.banner,
        banner_frame=s.banner_frame,
        # a blank session's lists are shared by every record made from it: published as tuples
        **(dict(dialogue_fields(dlg), dialogue=(), logins=(), commands=()) if blank else dialogue_fields(dlg)),
        handshakes=tuple(HandshakeRecord.of(h) for h in s.handshakes),
        rec_ts=s.rec_ts,
        rec_frame=s.rec_frame,
        rec_dir=s.rec_dir,
        rec_type=s.rec_type,
        rec_len=s.rec_len,
        rec_hs=s.rec_hs,
        records_total=s.records_total,
        records_dropped=s.records_dropped,
        app_records=(s.app_records[0], s.app_records[1]),  # (client->server, server->client)
        app_bytes=(s.app_bytes[0], s.app_bytes[1]),
        transport=s.transport,
        continued_in_clear=s.tls_ended_in_clear,
        clear_after_tls_frame=s.clear_after_tls_frame,
        inner_protocol=s.inner_protocol,
        nfc_message_types=dict(s.nfc_message_types),
        nfc_aio_types=dict(s.nfc_aio_types),
        nfc_paths=() if blank else s.nfc_paths,
        nfc_data_bytes=s.nfc_data,
        weird=() if blank else s.weird,
        weird_total=s.weird_total,
        midstream_alerts=() if blank else s.midstream_alerts,
    )
    # the record is not published yet: its last fields are filled in place, not by copying all
    # eighty (two ``replace`` calls were a third of a SYN flood's run)
    fill = object.__setattr__
    dropped = {name: n for name, n in (("dialogue", dlg.lines_dropped), ("commands", dlg.commands_dropped),
                                        ("alerts", s.alerts_dropped), ("handshakes", s.handshakes_dropped),
                                        ("tls_records", s.records_dropped),
                                        ("syn_times", max(0, len(conn.syn_times) - 16))) if n}
    if dropped:
        fill(rec, "dropped", dropped)
    if s.decryption is not None:
        fill(rec, "decryption", s.decryption)
        fill(rec, "visible", dialogue_fields(s.decryption.visible))
    fill(rec, "failure", failure_of(rec))
    return rec


_FIELD_NAMES: tuple[str, ...] = ()


def evolve(rec: SessionRecord, **changes) -> SessionRecord:
    """``dataclasses.replace`` for a record, at half the cost (no ``__init__`` over eighty
    keyword arguments): the verdict, links and provenance are attached to every record."""
    global _FIELD_NAMES
    if not _FIELD_NAMES:
        _FIELD_NAMES = tuple(f.name for f in fields(SessionRecord))
    for name in changes:
        if name not in SessionRecord.__dataclass_fields__:
            raise TypeError(f"SessionRecord has no field {name!r}")
    new = object.__new__(SessionRecord)
    fill = object.__setattr__
    for name in _FIELD_NAMES:
        fill(new, name, getattr(rec, name))
    for name, value in changes.items():
        fill(new, name, value)
    return new


def dialogue_fields(dlg) -> dict:
    """The SessionRecord fields an authd dialogue decides."""
    return dict(dialogue=dlg.lines, user=dlg.user, login_outcome=dlg.login_outcome,
                login_attempts=dlg.login_attempts, logins_failed=dlg.logins_failed, logins=dlg.attempts,
                login_summary=dlg.login_summary, connect_kind=dlg.connect_kind,
                connect_target=dlg.connect_target, connect_ok=dlg.connect_ok, commands=dlg.commands,
                connect_code=dlg.connect_code, connect_frame=dlg.connect_frame,
                connect_reply_frame=dlg.connect_reply_frame)


# -- why a session failed ------------------------------------------------------------------------

FAILURES = {
    "no_answer": "the client's SYNs got no answer",
    "refused": "the server answered the SYN with RST",
    "tls_alert": "a fatal TLS alert in clear ended a handshake",
    "login_rejected": "every login was rejected and nothing followed",
    "connect_rejected": "CONNECT / PROXY was answered with an error",
    "reset": "RST after the connection was established",
}


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str  # a key of FAILURES
    frame: int | None  # the evidence
    reason: str


def _who_reset(history: str) -> str:
    """Who sent the first RST, from Zeek history letters (upper case = client)."""
    for ch in history:
        if ch == "R":
            return "client"
        if ch == "r":
            return "server"
    return "one side"


def failure_of(rec: SessionRecord, inferred_login: str | None = None,
               inferred_frame: int | None = None) -> Failure | None:
    """What made this session fail, from its published fields alone; None if nothing did.

    One kind per session, the one closest to the cause: a connection that never opened
    (``no_answer``, ``refused``) explains everything after it; a handshake refused by a TLS
    alert comes before any login; logins that were all rejected explain a later CONNECT
    error or reset; an error to ``CONNECT``/``PROXY`` explains a reset that follows it.

    ``inferred_login`` ("rejected" / "accepted" / None, with ``inferred_frame``) is a login
    outcome inferred for logins inside TLS (record sizes); it only counts where no login is
    visible in clear."""
    if rec.state == "no_answer":
        return Failure("no_answer", rec.first_frame, f"{rec.syn_count} SYN(s) from the client, no answer")
    if rec.state == "refused":
        return Failure("refused", rec.rst_frame, "the server answered the SYN with RST")
    alerts = [(a, h.server_hello_frame) for h in rec.handshakes for a in h.alerts]
    if rec.state != "partial":  # a server refusing a ClientHello is filed as "without handshake"
        alerts += [(a, None) for a in rec.midstream_alerts]
    for (ts, frame, who, level, desc, encrypted), hello_frame in sorted(alerts, key=lambda x: x[0][1]):
        if encrypted or level != "fatal":
            continue
        when = "before the ServerHello" if hello_frame is None or frame < hello_frame else "during the handshake"
        return Failure("tls_alert", frame, f"the {who} sent a fatal TLS alert {desc} {when}")
    worked = rec.connect_ok is True or len(rec.handshakes) >= 2 or rec.continued_in_clear
    if rec.logins:
        rejected = [a for a in rec.logins if a.outcome == "rejected"]
        if rejected and not any(a.outcome == "accepted" for a in rec.logins) and not worked:
            codes = sorted({a.code for a in rejected if a.code is not None})  # a rejected login has its reply code
            return Failure("login_rejected", rejected[-1].reply_frame,
                           f"{len(rejected)} of {len(rec.logins)} login(s) rejected "
                           f"({', '.join(map(str, codes))}), none accepted")
    elif inferred_login == "rejected" and not worked:
        return Failure("login_rejected", inferred_frame, "the login inside TLS was rejected (inferred from record sizes)")
    if rec.connect_ok is False:
        code = rec.connect_code
        return Failure("connect_rejected", rec.connect_reply_frame,
                       f"the {rec.connect_kind} request for {rec.connect_target or '?'} was answered {code} "
                       f"({REPLY_CODES.get(code, 'unknown') if code is not None else 'unknown'})")
    if rec.state == "reset":
        return Failure("reset", rec.rst_frame,
                       f"the {_who_reset(rec.history)} reset the connection after {rec.duration_s:.1f} s")
    return None


__all__ = ["FAILURES", "Failure", "SessionRecord", "evolve", "failure_of", "summarize"]
