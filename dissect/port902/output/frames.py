"""pandas DataFrames from analysis results (stage 6), with declared columns.

Every frame has a schema: column name -> (dtype, one-line description), Zeek-log
style (``orig_`` = client, ``resp_`` = server, units in names).  An empty result
is an empty frame that still has its columns and dtypes, so notebooks and
scripts never special-case "nothing found".  ``describe(name)`` prints the
column documentation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pandas is imported when a frame is built, not when the package loads
    import pandas as pd

from ..proto import tls as tlsmod
from ..infer.features import FEATURES as FEATURE_FUNCTIONS
from ..infer.features import compute as compute_features
from ..analyzers.session import DIRECTIONS

Schema = dict[str, tuple[str, str]]

SESSIONS: Schema = {
    "uid": ("string", "session id, shared by every frame"),
    "source": ("string", "capture file the session came from"),
    "orig_ip": ("string", "client address"),
    "orig_port": ("Int64", "client port"),
    "resp_ip": ("string", "server address"),
    "resp_port": ("Int64", "server port (902, 903, 912, or where an authd greeting was seen)"),
    "start": ("datetime64[ns, UTC]", "first packet"),
    "end": ("datetime64[ns, UTC]", "last packet"),
    "duration_s": ("float64", "end - start, seconds"),
    "first_frame": ("Int64", "frame number of the first packet"),
    "last_frame": ("Int64", "frame number of the last packet"),
    "state": ("category", "no_answer | refused | established | closed | reset | partial"),
    "conn_state": ("category", "Zeek conn_state (S0, SF, REJ, RSTO, OTH, ...)"),
    "history": ("string", "Zeek history letters, upper case = client"),
    "syn_count": ("Int64", "SYNs the client sent (retries included)"),
    "orig_packets": ("Int64", "packets client -> server"),
    "resp_packets": ("Int64", "packets server -> client"),
    "orig_bytes": ("Int64", "in-order payload bytes client -> server (each byte once)"),
    "resp_bytes": ("Int64", "in-order payload bytes server -> client"),
    "orig_wire_bytes": ("Int64", "payload bytes client -> server as seen on the wire, retransmissions included"),
    "resp_wire_bytes": ("Int64", "payload bytes server -> client as seen on the wire"),
    "retransmissions": ("Int64", "retransmitted segments, both directions"),
    "gap_bytes": ("Int64", "payload bytes missing from the capture, both directions"),
    "banner_version": ("string", "authd protocol version from the greeting"),
    "ssl_required": ("boolean", "greeting says 'SSL Required'"),
    "capabilities": ("string", "greeting capabilities, ';'-joined"),
    "product": ("string", "product guess from the banner variant"),
    "transport": ("category", "plain | tls | tls+tls2 | tls+clear | none"),
    "tls_version": ("string", "negotiated version of the first handshake"),
    "tls_cipher": ("string", "negotiated cipher suite of the first handshake"),
    "tls_handshakes": ("Int64", "TLS handshakes on the stream (2 = hand-off to MKS / NFC-over-TLS)"),
    "sni": ("string", "server name the first ClientHello asked for"),
    "ja3": ("string", "JA3 hash of the first ClientHello"),
    "ja4": ("string", "JA4 of the first ClientHello"),
    "server_cert_sha1": ("string", "server certificate SHA-1, vSphere style (AA:BB:...)"),
    "continued_in_clear": ("boolean", "the stream went on without TLS after a handshake (cleartext NFC)"),
    "inner_protocol": ("string", "what runs after the hand-off when visible (NFC, RFB)"),
    "orig_app_records": ("Int64", "TLS application-data records client -> server"),
    "resp_app_records": ("Int64", "TLS application-data records server -> client"),
    "orig_app_bytes": ("Int64", "TLS application-data bytes client -> server (record lengths)"),
    "resp_app_bytes": ("Int64", "TLS application-data bytes server -> client"),
    "user": ("string", "the user a visible login was accepted for, else the last one tried (tickets redacted)"),
    "login_outcome": ("category", "accepted (a PASS earned 230) | rejected | unanswered | none (no PASS seen)"),
    "login_attempts": ("Int64", "PASS / XPAS commands seen (one row each in the logins frame)"),
    "logins_failed": ("Int64", "login attempts answered with an error (530 ...)"),
    "login_summary": ("string", "every login in one phrase: 'accepted as root after 0 failures; 2 rejected'"),
    "connect_kind": ("string", "mks | proxy | vmxargs when the CONNECT/PROXY line is visible"),
    "connect_target": ("string", "vmx path or service name"),
    "nfc_messages": ("Int64", "cleartext NFC messages and AIO frames seen"),
    "feature": ("category", "MKS | NFC | SOAP | VMXARGS | NONE | UNKNOWN"),
    "confidence": ("float64", "classifier confidence in [0, 1]"),
    "top_reason": ("string", "the classifier's first reason"),
    "handoff_from": ("string", "uid of the 903 session of a 903 -> 902 hand-off"),
    "handoff_to": ("string", "uid of the 902 session of a 903 -> 902 hand-off"),
    "handoff_gap_s": ("float64", "seconds from the end of the 903 session to the start of the 902 one"),
    "weird": ("Int64", "malformed or unexpected findings in this session"),
    "failure": ("category", "why the session failed: no_answer | refused | tls_alert | login_rejected | "
                            "connect_rejected | reset; empty when nothing did (results.failure_of)"),
    "failure_frame": ("Int64", "frame of the evidence for the failure (SYN, RST, alert, 530, error reply)"),
    "failure_reason": ("string", "the failure in words"),
}

LOGINS: Schema = {
    "uid": ("string", "session id"),
    "attempt": ("Int64", "1 = the session's first PASS / XPAS"),
    "user": ("string", "the USER the attempt went with (tickets redacted); empty without a USER"),
    "user_frame": ("Int64", "frame of that USER line"),
    "ts": ("datetime64[ns, UTC]", "time of the PASS line"),
    "pass_frame": ("Int64", "frame of the PASS line"),
    "code": ("Int64", "reply code matched to it in command order (230, 530, ...); empty without a reply"),
    "reply_ts": ("datetime64[ns, UTC]", "time of the reply"),
    "reply_frame": ("Int64", "frame of the reply"),
    "outcome": ("category", "accepted | rejected | unanswered"),
}

TLS_RECORDS: Schema = {
    "uid": ("string", "session id"),
    "ts": ("datetime64[ns, UTC]", "time of the packet holding the record header"),
    "frame": ("Int64", "frame number of that packet"),
    "direction": ("category", "client_to_server | server_to_client"),
    "content_type": ("category", "TLS content type name"),
    "length": ("Int64", "record length field, bytes (header excluded)"),
    "handshake": ("Int64", "which handshake on the stream the record belongs to (1 = TLS #1)"),
}

HANDSHAKES: Schema = {
    "uid": ("string", "session id"),
    "index": ("Int64", "1 = TLS #1 after the banner, 2 = the hand-off handshake"),
    "ts": ("datetime64[ns, UTC]", "ClientHello time"),
    "frame": ("Int64", "ClientHello frame"),
    "client_versions": ("string", "versions the client offered, ';'-joined"),
    "version": ("string", "negotiated version"),
    "cipher": ("string", "negotiated cipher suite"),
    "sni": ("string", "server name indication"),
    "alpn": ("string", "ALPN protocols offered, ';'-joined"),
    "ja3": ("string", "JA3 hash"),
    "ja3_string": ("string", "JA3 input string"),
    "ja4": ("string", "JA4"),
    "ja4_r": ("string", "JA4 raw (unhashed) form"),
    "cert_subject": ("string", "server certificate subject when in clear (TLS <= 1.2)"),
    "cert_issuer": ("string", "server certificate issuer"),
    "cert_not_after": ("string", "certificate expiry (ISO 8601)"),
    "cert_sha1": ("string", "certificate SHA-1 thumbprint, vSphere style"),
    "cert_sha256": ("string", "certificate SHA-256 thumbprint, vSphere style"),
    "alerts": ("string", "alerts seen, ';'-joined"),
    "orig_app_records": ("Int64", "application-data records from the client in this handshake's session"),
    "resp_app_records": ("Int64", "application-data records from the server"),
}

DIALOGUE: Schema = {
    "uid": ("string", "session id"),
    "ts": ("datetime64[ns, UTC]", "time of the packet where the line started"),
    "frame": ("Int64", "frame number"),
    "direction": ("category", "client_to_server | server_to_client"),
    "command": ("string", "client verb (USER, PASS, CONNECT, ...)"),
    "code": ("Int64", "server reply code"),
    "text": ("string", "the line as sent (latin-1), credentials redacted unless asked otherwise"),
}

WEIRD: Schema = {
    "uid": ("string", "session id, empty for damage in the capture file itself"),
    "source": ("string", "capture file"),
    "ts": ("datetime64[ns, UTC]", "when, if known"),
    "frame": ("Int64", "frame number, if known"),
    "offset": ("Int64", "byte offset in the capture, for file damage"),
    "kind": ("category", "what kind of problem"),
    "detail": ("string", "explanation"),
}

HANDOFFS: Schema = {
    "from_session": ("string", "uid of the 903 session"),
    "to_session": ("string", "uid of the 902 session"),
    "client": ("string", "client address"),
    "from_server": ("string", "903 server ip:port"),
    "to_server": ("string", "902 server ip:port"),
    "gap_s": ("float64", "seconds from the end of the 903 session to the start of the 902 one (negative: overlap)"),
    "same_server": ("boolean", "902 went to the same address as 903"),
    "from_frame": ("Int64", "first frame of the 903 session"),
    "to_frame": ("Int64", "first frame of the 902 session"),
}

FEATURES: Schema = {
    "uid": ("string", "session id"),
    **{name: ("float64" if name not in ("continued_in_clear", "midstream", "handoff_seen_midway") else "boolean", doc)
       for name, (doc, _fn) in FEATURE_FUNCTIONS.items()},
    "feature": ("category", "classifier label"),
    "confidence": ("float64", "classifier confidence"),
    "judged_as": ("category", "which evidence decided: clear (readable dialogue or NFC), tls1 (TLS #1 decoded "
                              "from record sizes), handoff (shape after a second handshake), midstream (shape of a "
                              "capture that began inside)"),
    "decoded_as": ("string", "the dialogue template that explains TLS #1's record sizes best"),
    "decoded_dialogue": ("string", "that template's reading of the records, e.g. 'USER(~24) 331 PASS(~24) 530 ×3'"),
    "decoded_margin": ("float64", "log10 likelihood ratio of the decoded template against the best other label"),
}

SCHEMAS = {
    "sessions": SESSIONS,
    "tls_records": TLS_RECORDS,
    "handshakes": HANDSHAKES,
    "dialogue": DIALOGUE,
    "logins": LOGINS,
    "weird": WEIRD,
    "handoffs": HANDOFFS,
    "features": FEATURES,
}
from .decrypted import SCHEMAS as _DECRYPTED  # noqa: E402 - rfb_messages, nfc_operations, http (issue 9)

SCHEMAS.update(_DECRYPTED)


def build(schema: Schema, rows: Iterable[dict] | Iterable[tuple]) -> "pd.DataFrame":
    """A frame with exactly the schema's columns and dtypes, also when ``rows`` is empty."""
    import pandas as pd

    cols = list(schema)
    df = pd.DataFrame(list(rows), columns=cols)
    for col, (dtype, _doc) in schema.items():
        if dtype.startswith("datetime64"):
            df[col] = pd.to_datetime(pd.to_numeric(df[col], errors="coerce"), unit="s", utc=True).astype(dtype)
        else:
            df[col] = df[col].astype(dtype)
    return df


def describe(name: str) -> str:
    """Column documentation of one frame, as text."""
    schema = SCHEMAS[name]
    width = max(len(c) for c in schema)
    return "\n".join(f"{c:<{width}}  {t:<22} {d}" for c, (t, d) in schema.items())


def _first_hello(rec):
    for h in rec.handshakes:
        if h.client_hello is not None:
            return h.client_hello
    return None


def sessions_frame(sessions) -> "pd.DataFrame":
    rows = []
    for s in sessions:
        ch = _first_hello(s)
        b = s.banner
        f = s.failure
        rows.append({
            "uid": s.uid, "source": s.source, "orig_ip": s.client_ip, "orig_port": s.client_port,
            "resp_ip": s.server_ip, "resp_port": s.server_port, "start": s.start, "end": s.end,
            "duration_s": s.duration_s, "first_frame": s.first_frame, "last_frame": s.last_frame,
            "state": s.state, "conn_state": s.conn_state, "history": s.history, "syn_count": s.syn_count,
            "orig_packets": s.packets[0], "resp_packets": s.packets[1],
            "orig_bytes": s.bytes[0], "resp_bytes": s.bytes[1],
            "orig_wire_bytes": s.wire_bytes[0], "resp_wire_bytes": s.wire_bytes[1],
            "retransmissions": sum(s.retransmissions), "gap_bytes": sum(s.gap_bytes),
            "banner_version": b.version if b else None, "ssl_required": b.ssl_required if b else None,
            "capabilities": ";".join(b.capabilities) if b else None, "product": s.product,
            "transport": s.transport, "tls_version": s.tls_version, "tls_cipher": s.tls_cipher,
            "tls_handshakes": len(s.handshakes), "sni": ch.server_name if ch else None,
            "ja3": ch.ja3 if ch else None, "ja4": ch.ja4 if ch else None,
            "server_cert_sha1": s.server_cert_sha1, "continued_in_clear": s.continued_in_clear,
            "inner_protocol": s.inner_protocol,
            "orig_app_records": s.app_records[0], "resp_app_records": s.app_records[1],
            "orig_app_bytes": s.app_bytes[0], "resp_app_bytes": s.app_bytes[1],
            "user": s.user, "login_outcome": s.login_outcome, "login_attempts": s.login_attempts,
            "logins_failed": s.logins_failed, "login_summary": s.login_summary,
            "connect_kind": s.connect_kind, "connect_target": s.connect_target,
            "nfc_messages": sum(s.nfc_message_types.values()) + sum(s.nfc_aio_types.values()),
            "feature": s.feature, "confidence": s.confidence,
            "top_reason": s.reasons[0] if s.reasons else None,
            "handoff_from": s.handoff_from, "handoff_to": s.handoff_to, "handoff_gap_s": s.handoff_gap_s,
            "weird": s.weird_total,
            "failure": f.kind if f else None, "failure_frame": f.frame if f else None,
            "failure_reason": f.reason if f else None,
        })
    return build(SESSIONS, rows)


def tls_records_frame(sessions) -> "pd.DataFrame":
    rows = []
    names = tlsmod.CONTENT_TYPES
    for s in sessions:
        uid = s.uid
        rows.extend((uid, ts, fr, DIRECTIONS[d], names.get(ct, str(ct)), ln, hs) for ts, fr, d, ct, ln, hs in s.records())
    return build(TLS_RECORDS, rows)


def handshakes_frame(sessions) -> "pd.DataFrame":
    rows = []
    for s in sessions:
        for h in s.handshakes:
            ch = h.client_hello
            cert = h.certificates[0] if h.certificates else None
            rows.append({
                "uid": s.uid, "index": h.index, "ts": h.ts, "frame": h.frame,
                "client_versions": ";".join(tlsmod.version_name(v) for v in ch.offered_versions) if ch else None,
                "version": h.version, "cipher": h.cipher,
                "sni": ch.server_name if ch else None, "alpn": ";".join(ch.alpn) if ch else None,
                "ja3": ch.ja3 if ch else None, "ja3_string": ch.ja3_string if ch else None,
                "ja4": ch.ja4 if ch else None, "ja4_r": ch.ja4_r if ch else None,
                "cert_subject": cert.subject if cert else None, "cert_issuer": cert.issuer if cert else None,
                "cert_not_after": cert.not_after.isoformat() if cert and cert.not_after else None,
                "cert_sha1": cert.sha1 if cert else None, "cert_sha256": cert.sha256 if cert else None,
                "alerts": ";".join(f"{who}:{desc or 'encrypted'}" for _, _, who, _, desc, _ in h.alerts) or None,
                "orig_app_records": h.client_app_records, "resp_app_records": h.server_app_records,
            })
    return build(HANDSHAKES, rows)


def dialogue_frame(sessions) -> "pd.DataFrame":
    rows = []
    for s in sessions:
        for ln in s.dialogue:
            rows.append((s.uid, ln.ts, ln.frame, "client_to_server" if ln.from_client else "server_to_client",
                         ln.verb, ln.code, ln.text))
    return build(DIALOGUE, rows)


def logins_frame(sessions) -> "pd.DataFrame":
    """One row per login attempt (PASS / XPAS) with the reply authd gave it."""
    rows = []
    for s in sessions:
        for n, a in enumerate(s.logins, 1):
            rows.append((s.uid, n, a.user, a.user_frame, a.pass_ts, a.pass_frame, a.code, a.reply_ts,
                         a.reply_frame, a.outcome))
    return build(LOGINS, rows)


def weird_frame(weird) -> "pd.DataFrame":
    return build(WEIRD, [(w.uid, w.source, w.ts, w.frame, w.offset, w.kind, w.detail) for w in weird])


def handoffs_frame(handoffs) -> "pd.DataFrame":
    return build(HANDOFFS, [h.to_dict() for h in handoffs])


def features_frame(sessions) -> "pd.DataFrame":
    """One row per session: the feature values the classifier's deciding rule read (a mid-stream
    session judged as a hand-off shows its hand-off view), and the decoded TLS #1 dialogue."""
    from ..infer.classify import classify  # the verdict is recomputed: frame and verdict cannot disagree

    rows = []
    for s in sessions:
        v = classify(s)
        row = {"uid": s.uid, **{k: val for k, val in (v.inputs or compute_features(s)).items() if k != "uid"}}
        row["feature"], row["confidence"] = s.feature, s.confidence
        row["judged_as"], row["decoded_as"], row["decoded_margin"] = v.judged_as, v.decoded_as, v.decoded_margin
        row["decoded_dialogue"] = v.decoded_dialogue
        rows.append(row)
    return build(FEATURES, rows)
