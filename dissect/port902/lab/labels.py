"""The labels document of a lab capture: its schema, the connection vocabulary, the expected facts.

Why: every capture the lab writes comes with ``<stem>.labels.json`` — the ground truth a
dissector is scored against. This module is the one definition of that document: the schema
name, the feature / transport / outcome vocabularies (protocol.md §4-§7 for the features, §2.1
for banner ids, §3.3 and §8 for thumbprints), the keys of every connection's ``expected`` block
with their defaults and meanings, and ``label_schema()``, the human-readable description.
``scenario.Scenario.label`` fills a connection's label from these; nothing here builds traffic.
"""

from __future__ import annotations

LABELS_SCHEMA = "dissect902-lab-labels/1"
FEATURES = ("MKS", "NFC", "SOAP", "VMXARGS", "NONE")
TRANSPORTS = ("tls", "tls+tls2", "tls+clear", "plain", "ssh", "udp", "none")
OUTCOMES = {"closed": "closed", "reset": "reset", "no_answer": "no_answer", "refused": "refused",
            "established": "open", "udp": "udp"}

# every connection's "expected" block has exactly these keys: name -> (default, meaning)
EXPECTED_FIELDS = {
    "banner": (None, "greeting line without CRLF"),
    "banner_id": (None, "B1..B10 (protocol.md §2.1)"),
    "ssl_required": (None, "the banner says 'SSL Required'"),
    "tls_handshakes": (0, "0, 1 (TLS #1) or 2 (TLS #1 and TLS #2 on the same stream)"),
    "tls_version": (None, "TLS #1 version as Python names it: TLSv1, TLSv1.2, TLSv1.3"),
    "tls_cipher": (None, "TLS #1 cipher suite, OpenSSL name"),
    "tls2_version": (None, "TLS #2 version"),
    "tls2_cipher": (None, "TLS #2 cipher suite"),
    "sni": (None, "server name in the ClientHello, if any"),
    "cert_sha1": (None, "SHA-1 thumbprint of the server certificate, vSphere form AA:BB:…"),
    "cert_sha256": (None, "SHA-256 thumbprint of the server certificate"),
    "login": (None, "ok | failed | unanswered | null (no login)"),
    "login_kind": (None, "ticket | password | session"),
    "login_attempts": (0, "USER/PASS pairs sent"),
    "login_failures": (0, "attempts answered 530 (or not answered)"),
    "users": ([], "USER arguments in order"),
    "command": (None, "handoff command: CONNECT | PROXY | CONNECT_ARGV"),
    "target": (None, "vmx path, or ha-nfc / ha-nfcssl"),
    "continues_in_clear": (False, "cleartext application bytes follow TLS #1"),
    "nfc_mode": (None, "nbd | nbdssl | nfclib | nfclib-ssl"),
    "nfc_bytes": (None, "disk bytes read or file bytes uploaded"),
    "app": (None, "what the flow carries: authd, https, dns, ssh, vpxa-heartbeat"),
    "model": (False, "the feature is the lab's model, not an observed wire format"),
}
EXPECTED_DEFAULTS = {name: default for name, (default, _) in EXPECTED_FIELDS.items()}


def label_schema() -> dict:
    """A human-readable description of the labels document (kept next to the code it describes)."""
    return {
        "schema": LABELS_SCHEMA,
        "scenario": "builder name", "seed": "int", "description": "what the capture shows",
        "capture": {"file": "str", "format": "pcap|pcapng", "link": "links.LINKTYPES key",
                    "ts_resolution": "us|ns", "packets": "int", "start_ts": "float", "end_ts": "float"},
        "connections[]": {
            "uid": "C01…, stable per builder call order",
            "proto": "tcp|udp",
            "client/server": {"ip": "str", "port": "int"},
            "start_ts/end_ts": "first SYN (or datagram), even if before the capture / last packet in the capture",
            "captured_from_start": "false when the capture begins mid-connection: expected facts stay ground "
                                   "truth, but those established before the first captured frame are not visible",
            "feature": "|".join(FEATURES),
            "service": "what listens: authd, https, ssh, dns, vpxa-heartbeat",
            "persona": "personas.PERSONAS key or null",
            "transport": "|".join(TRANSPORTS),
            "outcome": "|".join(sorted(set(OUTCOMES.values()))),
            "payload_bytes": {"c2s": "TCP/UDP payload bytes, retransmissions excluded", "s2c": "…"},
            "expected": {name: meaning for name, (_, meaning) in EXPECTED_FIELDS.items()},
            "conditions": "rtt_s, mss, vantage, loss_rate, capture_from, injected[] (loss/reorder events)",
            "related": "links to other connections, e.g. handoff_from",
            "frames": {"first": "1-based frame number", "last": "int", "count": "int"},
            "events[]": {"what": "mark name", "frame": "int", "ts": "float"},
            "notes": "free text",
        },
    }
