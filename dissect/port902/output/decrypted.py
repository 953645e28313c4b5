"""DataFrames of what decryption (``decrypt/``) read (issue 9): RFB messages, NFC operations and HTTP
messages inside TLS, one row each, with declared columns like ``output.frames``.  A session
without keys contributes no rows; an analysis without keys gives empty frames with columns.
Key event contents (``keysym``) are ``<redacted>`` unless the analysis ran with show_secrets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

RFB_MESSAGES = {
    "uid": ("string", "session id"),
    "handshake": ("Int64", "TLS handshake the message was decrypted from (2 = TLS #2)"),
    "ts": ("float64", "epoch seconds of the frame completing the record"),
    "frame": ("Int64", "frame number"),
    "direction": ("category", "client_to_server | server_to_client"),
    "message": ("category", "RFB message: ServerInit, SetEncodings, FramebufferUpdate, KeyEvent, PointerEvent, ..."),
    "length": ("Int64", "message bytes (FramebufferUpdate: header + every rectangle)"),
    "rectangles": ("Int64", "FramebufferUpdate: rectangles"),
    "encodings": ("string", "FramebufferUpdate: rectangle encodings with counts; SetEncodings: the list, ';'-joined"),
    "width": ("Int64", "ServerInit / resize: framebuffer width"),
    "height": ("Int64", "ServerInit / resize: framebuffer height"),
    "name": ("string", "ServerInit: desktop name"),
    "x": ("Int64", "PointerEvent / FramebufferUpdateRequest: x"),
    "y": ("Int64", "PointerEvent / FramebufferUpdateRequest: y"),
    "buttons": ("Int64", "PointerEvent: button mask"),
    "down": ("boolean", "KeyEvent: key pressed (true) or released"),
    "keysym": ("string", "KeyEvent: X keysym in hex, <redacted> unless --show-secrets (typed text is a secret)"),
}
NFC_OPERATIONS = {
    "uid": ("string", "session id"),
    "handshake": ("Int64", "TLS handshake the operation was decrypted from (2 = NFC over TLS #2)"),
    "ts": ("float64", "epoch seconds"),
    "frame": ("Int64", "frame number"),
    "direction": ("category", "client_to_server | server_to_client"),
    "layer": ("category", "message (264-byte classic NFC) | aio (16-byte-header AIO frame)"),
    "operation": ("string", "NFC message or AIO frame name"),
    "path": ("string", "file or disk path the operation names"),
    "size": ("Int64", "AIO payload size / file size when given"),
    "extra_bytes": ("Int64", "bytes after the fixed header (path, data)"),
}
HTTP = {
    "uid": ("string", "session id"),
    "handshake": ("Int64", "TLS handshake (1 = SOAP inside TLS #1)"),
    "ts": ("float64", "epoch seconds of the start line"),
    "frame": ("Int64", "frame of the start line"),
    "direction": ("category", "client_to_server (request) | server_to_client (response)"),
    "method": ("string", "request method"),
    "target": ("string", "request target"),
    "status": ("Int64", "response status code"),
    "soap_action": ("string", "SOAPAction header (the vim25 API version)"),
    "content_type": ("string", "Content-Type header"),
    "body_bytes": ("Int64", "body bytes (Content-Length or chunked)"),
    "header_bytes": ("Int64", "start line and headers, bytes"),
    "credentials": ("boolean", "an Authorization / Cookie / Set-Cookie header was present (its value is never kept)"),
}
SCHEMAS = {"rfb_messages": RFB_MESSAGES, "nfc_operations": NFC_OPERATIONS, "http": HTTP}


def _dir(from_client: bool) -> str:
    return "client_to_server" if from_client else "server_to_client"


def _build(schema, rows):
    from .frames import build

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
