"""DataFrames of what decryption (``decrypt/``) read (issue 9): RFB messages, NFC operations and HTTP
messages inside TLS, one row each, with declared columns like ``output.frames``.  A session
without keys contributes no rows; an analysis without keys gives empty frames with columns.
Key event contents (``keysym``) are ``<redacted>`` unless the analysis ran with show_secrets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from ..model.schema import HTTP, NFC_OPERATIONS, RFB_MESSAGES, build


def _dir(from_client: bool) -> str:
    return "client_to_server" if from_client else "server_to_client"


def _build(schema, rows):
    return build(schema, rows)


def rfb_messages_frame(sessions) -> "pd.DataFrame":
    rows = []
    for s in sessions:
        dec = getattr(s, "decryption", None)
        if dec is None:
            continue
        for hs, m in dec.rfb_messages:
            f = m.fields
            enc = f.get("encodings")
            if isinstance(enc, dict):
                enc = ";".join(f"{k}:{v}" for k, v in enc.items())
            elif isinstance(enc, list):
                enc = ";".join(enc)
            key = f.get("keysym")
            resize = f.get("resize")
            rows.append({
                "uid": s.uid, "handshake": hs, "ts": m.ts, "frame": m.frame, "direction": _dir(m.from_client),
                "message": m.name, "length": m.length, "rectangles": f.get("rects"), "encodings": enc,
                "width": f.get("width", resize[0] if resize else None),
                "height": f.get("height", resize[1] if resize else None), "name": f.get("name"),
                "x": f.get("x"), "y": f.get("y"), "buttons": f.get("buttons"), "down": f.get("down"),
                "keysym": None if key is None else (key if isinstance(key, str) else f"0x{key:x}"),
            })
    return _build(RFB_MESSAGES, rows)


def nfc_operations_frame(sessions) -> "pd.DataFrame":
    rows = []
    for s in sessions:
        dec = getattr(s, "decryption", None)
        if dec is None:
            continue
        for hs, fc, ev in dec.nfc_events:
            fields = ev.fields or {}
            aio = hasattr(ev, "aio_type")
            rows.append({
                "uid": s.uid, "handshake": hs, "ts": ev.ts, "frame": ev.frame, "direction": _dir(fc),
                "layer": "aio" if aio else "message", "operation": ev.name, "path": fields.get("path"),
                "size": ev.size if aio else fields.get("file_size", fields.get("size")),
                "extra_bytes": ev.extra_len,
            })
    return _build(NFC_OPERATIONS, rows)


def http_frame(sessions) -> "pd.DataFrame":
    rows = []
    for s in sessions:
        dec = getattr(s, "decryption", None)
        if dec is None:
            continue
        for hs, m in dec.http_messages:
            rows.append({
                "uid": s.uid, "handshake": hs, "ts": m.ts, "frame": m.frame, "direction": _dir(m.from_client),
                "method": m.method, "target": m.target, "status": m.status, "soap_action": m.soap_action,
                "content_type": m.content_type, "body_bytes": m.body_bytes, "header_bytes": m.header_bytes,
                "credentials": m.credentials,
            })
    return _build(HTTP, rows)
