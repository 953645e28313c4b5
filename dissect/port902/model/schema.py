"""Every table's declared columns, in one registry (Zeek-log style).

A schema is column name -> (pandas dtype, one-line description): ``orig_`` is the client,
``resp_`` the server, units are in the names. An empty result is an empty frame that still has
its columns and dtypes, so notebooks and scripts never special-case "nothing found".
``describe(name)`` prints a table's column documentation (``dissect902 analyze --describe``).
Data only: no stage imports are needed to know what a table holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..analyzers.consolepath import KINDS as PATH_KINDS
from ..extras import require
from ..net.tcp import STATES as TCP_STATES
from .timefmt import ns_safe

if TYPE_CHECKING:  # pandas is imported when a frame is built, not when the package loads
    import pandas as pd

Schema = dict[str, tuple[str, str]]

#: the per-session features (``infer.features`` computes them, in this order)
FEATURE_COLUMNS: Schema = {
    "handshakes": ("Int64", "TLS handshakes on the stream"),
    "continued_in_clear": ("boolean", "the stream went on without TLS after a handshake"),
    "nfc_messages": ("Int64", "cleartext NFC messages and AIO frames seen"),
    "midstream": ("boolean", "the capture began inside the connection (no SYN, no greeting)"),
    "handoff_seen_midway": ("boolean", "mid-stream: a handshake follows captured protected data (a hand-off's TLS #2)"),
    "tls1_client_msgs": ("Int64", "client messages inside TLS #1 (authd commands)"),
    "tls1_server_msgs": ("Int64", "server messages inside TLS #1 (authd replies)"),
    "tls1_client_first": ("Int64", "plaintext bytes of the first client message in TLS #1 (a USER / SESSION line)"),
    "tls1_client_last": ("Int64", "plaintext bytes of the last client message in TLS #1 (CONNECT is long, PROXY short)"),
    "tls1_server_last": ("Int64", "plaintext bytes of the last server message in TLS #1 ('200 Connect <vmx>' is long)"),
    "tls1_server_first": ("Int64", "plaintext bytes of the first server reply in TLS #1 (VDDK's re-sent banner is ~150+)"),
    "tls1_client_max": ("Int64", "largest client message in TLS #1 (SOAP requests are hundreds of bytes)"),
    "tls1_server_max": ("Int64", "largest server message in TLS #1"),
    "later_client_first": ("Int64", "first client message after the hand-off (MKS token: 16 bytes; NFC: 264-byte message)"),
    "later_client_regularity": ("float64", "share of client messages within 10% of their median size (fixed-size requests)"),
    "later_client_max": ("Int64", "largest client message after the hand-off"),
    "later_server_max": ("Int64", "largest server message after the hand-off"),
    "later_client_record_max": ("Int64", "largest client record after the hand-off (records written together are not summed)"),
    "later_server_record_max": ("Int64", "largest server record after the hand-off"),
    "later_server_full_share": ("float64", "share of server records at the 16 KiB maximum (streamed file data fills them)"),
    "later_client_msgs": ("Int64", "client messages after the hand-off (or in a mid-stream capture)"),
    "later_server_msgs": ("Int64", "server messages after the hand-off"),
    "later_client_small_share": ("float64", "share of those client messages ≤ 64 bytes (keys, pointer, update requests)"),
    "later_client_median": ("float64", "median client message size after the hand-off"),
    "later_server_large_share": ("float64", "share of server messages ≥ 1024 bytes (screen updates, file data)"),
    "later_server_bytes_share": ("float64", "server's share of the bytes after the hand-off"),
    "later_alternation": ("float64", "request/response alternation after the hand-off (1 = strict lockstep)"),
    "later_client_rate": ("float64", "client messages per second after the hand-off"),
    "later_idle_max_s": ("float64", "longest silence between messages after the hand-off, seconds"),
    "later_idle_count": ("Int64", "silences longer than 1 s after the hand-off"),
    "later_client_burstiness": ("float64", "coefficient of variation of client gaps (human typing is bursty)"),
    "duration_s": ("float64", "session duration, seconds"),
    "c2s_bytes": ("Int64", "payload bytes client -> server"),
    "s2c_bytes": ("Int64", "payload bytes server -> client"),
}

SESSIONS: Schema = {
    "uid": ("string", "session id, shared by every frame"),
    "source": ("string", "capture file the session came from (the sensor's name for an archive)"),
    "sources": ("string", "archive runs: the files the session spans, 'FILE:FIRST-LAST' (that file's own frame numbers), ' | '-separated; empty for one file"),
    "orig_ip": ("string", "client address"),
    "orig_port": ("Int64", "client port"),
    "resp_ip": ("string", "server address"),
    "resp_port": ("Int64", "server port (902, 903, 912, or where an authd greeting was seen)"),
    "start": ("datetime64[ns, UTC]", "first packet"),
    "end": ("datetime64[ns, UTC]", "last packet"),
    "duration_s": ("float64", "end - start, seconds"),
    "first_frame": ("Int64", "frame number of the first packet"),
    "last_frame": ("Int64", "frame number of the last packet"),
    "state": ("category", " | ".join(TCP_STATES)),
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
    "feature_inferred": ("category", "with a key log: the metadata classifier's verdict, kept beside the decrypted "
                                     "`feature` (they differ when the classifier erred); else empty"),
    "confidence_inferred": ("float64", "the metadata classifier's confidence when decryption decided `feature`"),
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
    **FEATURE_COLUMNS,
    "feature": ("category", "classifier label"),
    "confidence": ("float64", "classifier confidence"),
    "judged_as": ("category", "which evidence decided: clear (readable dialogue or NFC), tls1 (TLS #1 decoded "
                              "from record sizes), handoff (shape after a second handshake), midstream (shape of a "
                              "capture that began inside)"),
    "decoded_as": ("string", "the dialogue template that explains TLS #1's record sizes best"),
    "decoded_dialogue": ("string", "that template's reading of the records, e.g. 'USER(~24) 331 PASS(~24) 530 ×3'"),
    "decoded_margin": ("float64", "log10 likelihood ratio of the decoded template against the best other label"),
}

#: what decryption with a key log read (issue 9; ``output.decrypted`` builds them)
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

FRAME_TABLES = {  # the tables of analyze (--table, --describe)
    "sessions": SESSIONS,
    "tls_records": TLS_RECORDS,
    "handshakes": HANDSHAKES,
    "dialogue": DIALOGUE,
    "logins": LOGINS,
    "weird": WEIRD,
    "handoffs": HANDOFFS,
    "features": FEATURES,
    "rfb_messages": RFB_MESSAGES,
    "nfc_operations": NFC_OPERATIONS,
    "http": HTTP,
}


#: kind -> what it means (JSON, DataFrame categories, ``dissect902 doctor --help``)
FINDING_KINDS = {
    "dns_nxdomain": "a host name did not resolve: NXDOMAIN (no such name)",
    "dns_servfail": "the DNS server failed the lookup (SERVFAIL, REFUSED or another error)",
    "dns_no_answer": "a DNS query never got an answer",
    "dns_no_address": "the name exists but has no address record",
    "icmp_unreachable": "an ICMP error came back for a console packet (unreachable, administratively prohibited)",
    "syn_no_answer": "SYNs to 902 were never answered (filtered or host down)",
    "refused": "a SYN to 902 was answered with RST (closed, or a firewall rejecting)",
    "certificate_rejected": "the client rejected the host certificate (TLS alert, or hung up right after it)",
    "tls_alert": "a TLS alert ended the handshake on 902 (version / cipher mismatch)",
    "tls_before_greeting": "the client sent TLS before reading the authd greeting (a generic TLS client or a proxy)",
    "tls_to_plain_daemon": "the client started TLS with a daemon whose greeting has no 'SSL Required'",
    "clear_to_ssl_daemon": "the client answered an 'SSL Required' greeting with a line in clear (e.g. AUTH TLS)",
    "login_rejected": "authd answered a login with 530 (seen in clear, or inside TLS from the reply's record size)",
    "connect_failed": "the session ended right after CONNECT (VM not found / not powered on)",
    "reset_midstream": "an established 902 session was reset",
    "console_path_blocked": "a console path other than 902 (vCenter relay, ESXi 443) was not answered",
    "console_followed_vm": "a console session moved to another host (likely vMotion)",
    "console_retry": "the client reconnected its console to the same host",
    "vnc_console": "a VM console exposed as plain VNC (vmx RemoteDisplay.vnc): unencrypted, a port per VM",
    "vnc_no_auth": "a plain VNC console let a client in without authentication",
    "vnc_no_follow": "a plain VNC console ended and the client went on over 902 to another host (VM moved)",
}

FINDINGS: Schema = {
    "rank": ("Int64", "1 = the most likely explanation"),
    "likelihood": ("float64", "how likely this explains a console failure, in [0, 1]"),
    "severity": ("category", "problem | warning (a risk, e.g. a plain VNC console) | info (a note, e.g. a console that followed its VM)"),
    "kind": ("category", "what was found: " + ", ".join(FINDING_KINDS)),
    "title": ("string", "one line"),
    "detail": ("string", "the evidence in words: frames, hosts, times"),
    "hosts": ("string", "addresses involved, ';'-joined (client first)"),
    "first_ts": ("datetime64[ns, UTC]", "first packet of the evidence"),
    "last_ts": ("datetime64[ns, UTC]", "last packet of the evidence"),
    "evidence_frames": ("string", "frame numbers, ';'-joined"),
    "advice": ("string", "what to do"),
    "related_uids": ("string", "port-902 session uids, ';'-joined"),
    "source": ("string", "capture file the evidence came from"),
}

HEARTBEATS: Schema = {
    "esxi": ("string", "sender address (the ESXi host)"),
    "vcenter": ("string", "receiver address (vCenter)"),
    "host_ip": ("string", "the IPv4 address the heartbeat carries"),
    "host_key": ("string", "host key field"),
    "build": ("Int64", "ESXi build number"),
    "version": ("string", "ESXi release of that build, when known"),
    "datagrams": ("Int64", "UDP 902 datagrams in this direction"),
    "heartbeats": ("Int64", "datagrams with the heartbeat layout"),
    "not_heartbeat": ("Int64", "datagrams that are not heartbeats"),
    "first_ts": ("datetime64[ns, UTC]", "first datagram"),
    "last_ts": ("datetime64[ns, UTC]", "last datagram"),
    "interval_s": ("float64", "mean seconds between heartbeats"),
    "rate_per_min": ("float64", "heartbeats per minute"),
    "counter_first": ("Int64", "heartbeat counter of the first datagram"),
    "counter_last": ("Int64", "heartbeat counter of the last datagram"),
    "first_frame": ("Int64", "frame of the first datagram"),
    "ndpi_shape": ("boolean", "66 bytes, first byte 0xA4 (what nDPI keys on)"),
    "source": ("string", "capture file"),
}

CONSOLE_PATHS: Schema = {
    "kind": ("category", "console path: " + ", ".join(PATH_KINDS)),
    "client": ("string", "client ip:port"),
    "server": ("string", "server ip:port"),
    "server_port": ("Int64", "443, 7331, 7343 or 902"),
    "start": ("datetime64[ns, UTC]", "first packet"),
    "end": ("datetime64[ns, UTC]", "last control packet seen"),
    "duration_s": ("float64", "end - start, seconds"),
    "state": ("category", " | ".join(TCP_STATES) + " (the TCP layer's, as for sessions)"),
    "first_frame": ("Int64", "first frame"),
    "frames": ("string", "frames of SYN, SYN-ACK, ClientHello / request, ServerHello, RST; ';'-joined"),
    "sni": ("string", "server name from the ClientHello"),
    "http_method": ("string", "request method when in clear"),
    "http_target": ("string", "request target when in clear, tickets redacted"),
    "upgrade": ("string", "Upgrade header (websocket) when in clear"),
    "session_uid": ("string", "uid of the port-902 session (authd-902-mks rows)"),
    "source": ("string", "capture file"),
}

DNS_LOOKUPS: Schema = {
    "client": ("string", "address that asked"),
    "name": ("string", "name asked for (as sent; escape before printing)"),
    "qtypes": ("string", "query types, ';'-joined"),
    "queries": ("Int64", "queries sent (retransmissions included)"),
    "responses": ("Int64", "responses received"),
    "outcome": ("string", "resolved | NXDOMAIN | SERVFAIL | REFUSED | no_answer | no_address | pending"),
    "failed": ("boolean", "the lookup failed and did not resolve later"),
    "addresses": ("string", "addresses in the answers, ';'-joined"),
    "resolvers": ("string", "DNS servers asked, ';'-joined"),
    "first_ts": ("datetime64[ns, UTC]", "first query or response"),
    "last_ts": ("datetime64[ns, UTC]", "last query or response"),
    "first_frame": ("Int64", "frame of the first query"),
    "source": ("string", "capture file"),
}

#: the diagnosis' tables (``Diagnostics.findings_frame()`` and friends)
DIAGNOSIS_TABLES = {"findings": FINDINGS, "heartbeats": HEARTBEATS, "console_paths": CONSOLE_PATHS, "dns": DNS_LOOKUPS}

#: every table by name
SCHEMAS = {**FRAME_TABLES, **DIAGNOSIS_TABLES}
#: the version of the JSON document and of the tables' columns (2: auth.attempts became the list of
#: login attempts; failure fields)
SCHEMA_VERSION = 2


def build(schema: Schema, rows: Iterable[dict] | Iterable[tuple]) -> "pd.DataFrame":
    """A frame with exactly the schema's columns and dtypes, also when ``rows`` is empty."""
    pd = require("pandas", "a DataFrame")

    cols = list(schema)
    df = pd.DataFrame(list(rows), columns=cols)
    for col, (dtype, _doc) in schema.items():
        if dtype.startswith("datetime64"):
            # a capture's time past 2262 or before 1677 (damage, hostile input) becomes NaT, not an error;
            # whole microseconds: float epoch seconds hold no more, and unit="s" shows float noise as
            # nanoseconds (.02 became .019999981)
            seconds = ns_safe(pd.to_numeric(df[col], errors="coerce"))
            df[col] = pd.to_datetime((seconds * 1e6).round(), unit="us", utc=True).astype(dtype)
        else:
            df[col] = df[col].astype(dtype)
    return df


def describe(name: str) -> str:
    """Column documentation of one table, as text."""
    schema = SCHEMAS[name]
    width = max(len(c) for c in schema)
    return "\n".join(f"{c:<{width}}  {t:<22} {d}" for c, (t, d) in schema.items())


