"""TLS record layer and clear-text handshake metadata (no decryption).

Protocol: SSL 3.0 / TLS 1.0-1.3 records (RFC 5246 §6.2, RFC 8446 §5.1),
handshake messages (RFC 5246 §7.4, RFC 8446 §4), alerts (RFC 8446 §6) and the
X.509 certificates a TLS <= 1.2 server sends in clear.  Fingerprints: JA3
(Salesforce) and JA4 (FoxIO, ``technical_details/JA4.md``).

Port-902 specifics (protocol.md §3.2, §4.2, §5.3, §8; design.md §1): authd's
TLS #1 starts right after the clear banner; after ``200 Connect`` TLS #1 is
abandoned without close_notify and the *same* TCP stream continues either with
a brand-new ClientHello on the raw stream (MKS, NFC "nbdssl": TLS #2) or in
clear (NFC "nbd").  :class:`TlsDirection` therefore notices a second handshake
and the end of TLS, and hands the rest of the bytes back to its caller.

Pipeline stage: one direction's reassembled TCP bytes -> TLS events, for the
per-connection state machine (``analyzers.session``).  Record bodies that are encrypted
are skipped, never buffered, so a multi-GB stream costs O(1) memory.

Modules: ``registry`` (wire structures and value names), ``records`` (record and handshake
headers, reassembly), ``hello`` (Client/ServerHello, JA3/JA4), ``x509`` (certificates,
thumbprints), ``stream`` (the incremental per-direction parser and its events).
"""

from .hello import ClientHello, ServerHello, parse_client_hello, parse_server_hello
from .records import (
    HandshakeReassembler,
    HandshakeTooLarge,
    parse_alert,
    parse_handshake_header,
    parse_record_header,
    plausible_record_header,
)
from .registry import (
    ALERT,
    ALERT_DESCRIPTIONS,
    ALERT_LEVELS,
    CIPHER_SUITES,
    CONTENT_TYPES,
    EXTENSION_TYPES,
    HANDSHAKE_HEADER,
    HANDSHAKE_TYPES,
    HELLO_RETRY_REQUEST_RANDOM,
    MAX_HANDSHAKE_MESSAGE,
    MAX_RECORD_LENGTH,
    RECORD_HEADER,
    VERSIONS,
    cipher_name,
    is_grease,
    version_name,
)
from .stream import (
    TlsAlert,
    TlsChangeCipherSpec,
    TlsDirection,
    TlsEnd,
    TlsHandshakeMessage,
    TlsNewHandshake,
    TlsRecord,
    TlsWeird,
)
from .x509 import (
    CertificateInfo,
    certificate_summary,
    parse_certificate_list,
    thumbprint,
)

__all__ = [
    "CONTENT_TYPES", "HANDSHAKE_TYPES", "VERSIONS", "ALERT_LEVELS", "ALERT_DESCRIPTIONS",
    "EXTENSION_TYPES", "CIPHER_SUITES", "RECORD_HEADER", "HANDSHAKE_HEADER", "ALERT",
    "MAX_RECORD_LENGTH", "MAX_HANDSHAKE_MESSAGE", "HELLO_RETRY_REQUEST_RANDOM",
    "is_grease", "version_name", "cipher_name", "thumbprint",
    "parse_record_header", "plausible_record_header", "parse_handshake_header",
    "parse_client_hello", "parse_server_hello", "parse_certificate_list",
    "certificate_summary", "parse_alert",
    "ClientHello", "ServerHello", "CertificateInfo", "HandshakeReassembler", "HandshakeTooLarge",
    "TlsRecord", "TlsHandshakeMessage", "TlsAlert", "TlsChangeCipherSpec", "TlsNewHandshake",
    "TlsEnd", "TlsWeird", "TlsDirection",
]
