"""pandas DataFrames from analysis results (stage 6), with declared columns.

Every frame has a schema: column name -> (dtype, one-line description), Zeek-log
style (``orig_`` = client, ``resp_`` = server, units in names).  An empty result
is an empty frame that still has its columns and dtypes, so notebooks and
scripts never special-case "nothing found".  ``describe(name)`` prints the
column documentation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported when a frame is built, not when the package loads
    import pandas as pd

from ..infer.features import compute as compute_features
from ..model.schema import (
    DIALOGUE,
    FEATURES,
    FRAME_TABLES,
    HANDOFFS,
    HANDSHAKES,
    LOGINS,
    SESSIONS,
    TLS_RECORDS,
    WEIRD,
    Schema,
    build,
    describe,
)
from ..net.flows import DIRECTIONS
from ..proto import tls as tlsmod

# the frames' public face: the tables' schemas and their documentation live in model.schema
SCHEMAS = FRAME_TABLES
__all__ = ["SCHEMAS", "Schema", "build", "describe", "sessions_frame", "tls_records_frame", "handshakes_frame",
           "dialogue_frame", "logins_frame", "weird_frame", "handoffs_frame", "features_frame"]


def _first_hello(rec):
    for h in rec.handshakes:
        if h.client_hello is not None:
            return h.client_hello
    return None


def _sources(sources) -> str | None:
    """A session's archive provenance as one string cell (see SESSIONS['sources'])."""
    if not sources:
        return None
    return " | ".join(f"{x['file']}:{x['first_frame']}-{x['last_frame']}" for x in sources)


def sessions_frame(sessions) -> "pd.DataFrame":
    rows = []
    for s in sessions:
        ch = _first_hello(s)
        b = s.banner
        f = s.failure
        rows.append({
            "uid": s.uid, "source": s.source, "sources": _sources(s.sources), "orig_ip": s.client_ip, "orig_port": s.client_port,
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
            "feature_inferred": s.feature_inferred, "confidence_inferred": s.confidence_inferred,
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
    from ..infer.classify import (
        classify,  # the verdict is recomputed: frame and verdict cannot disagree
    )

    rows = []
    for s in sessions:
        v = classify(s)
        row = {"uid": s.uid, **{k: val for k, val in (v.inputs or compute_features(s)).items() if k != "uid"}}
        row["feature"], row["confidence"] = s.feature, s.confidence
        row["judged_as"], row["decoded_as"], row["decoded_margin"] = v.judged_as, v.decoded_as, v.decoded_margin
        row["decoded_dialogue"] = v.decoded_dialogue
        rows.append(row)
    return build(FEATURES, rows)
