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
per-connection state machine (session.py).  Record bodies that are encrypted
are skipped, never buffered, so a multi-GB stream costs O(1) memory.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from ..errors import Malformed, NeedMoreData

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

# ---------------------------------------------------------------------------------------------
# Wire structures, in wire order, names from the RFCs
# ---------------------------------------------------------------------------------------------

#: TLSPlaintext / TLSCiphertext header: ContentType type, ProtocolVersion version, uint16 length.
RECORD_HEADER = struct.Struct("!BHH")
#: Handshake header: HandshakeType msg_type (high 8 bits) | uint24 length (low 24 bits).
HANDSHAKE_HEADER = struct.Struct("!I")
#: Alert: AlertLevel level, AlertDescription description.
ALERT = struct.Struct("!BB")

#: Largest legal record body: 2^14 plaintext + 2048 expansion (RFC 5246 §6.2.3).
MAX_RECORD_LENGTH = 2**14 + 2048
#: Largest handshake message we reassemble; a Certificate chain of a few certs is far below.
MAX_HANDSHAKE_MESSAGE = 256 * 1024
#: ServerHello.random of a TLS 1.3 HelloRetryRequest (RFC 8446 §4.1.3).
HELLO_RETRY_REQUEST_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()

# ---------------------------------------------------------------------------------------------
# Value names (IANA TLS registries); plain dicts for parsing, display and categories
# ---------------------------------------------------------------------------------------------

CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data",
                 24: "heartbeat"}

HANDSHAKE_TYPES = {
    0: "hello_request", 1: "client_hello", 2: "server_hello", 3: "hello_verify_request",
    4: "new_session_ticket", 5: "end_of_early_data", 6: "hello_retry_request",
    8: "encrypted_extensions", 11: "certificate", 12: "server_key_exchange",
    13: "certificate_request", 14: "server_hello_done", 15: "certificate_verify",
    16: "client_key_exchange", 20: "finished", 21: "certificate_url", 22: "certificate_status",
    23: "supplemental_data", 24: "key_update", 25: "compressed_certificate", 254: "message_hash",
}

VERSIONS = {0x0002: "SSL 2.0", 0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1",
            0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}

ALERT_LEVELS = {1: "warning", 2: "fatal"}

ALERT_DESCRIPTIONS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure",
    41: "no_certificate", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 60: "export_restriction", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 111: "certificate_unobtainable", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
    115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}

EXTENSION_TYPES = {
    0: "server_name", 1: "max_fragment_length", 2: "client_certificate_url", 3: "trusted_ca_keys",
    4: "truncated_hmac", 5: "status_request", 6: "user_mapping", 7: "client_authz",
    8: "server_authz", 9: "cert_type", 10: "supported_groups", 11: "ec_point_formats", 12: "srp",
    13: "signature_algorithms", 14: "use_srtp", 15: "heartbeat",
    16: "application_layer_protocol_negotiation", 17: "status_request_v2",
    18: "signed_certificate_timestamp", 19: "client_certificate_type",
    20: "server_certificate_type", 21: "padding", 22: "encrypt_then_mac",
    23: "extended_master_secret", 24: "token_binding", 25: "cached_info",
    27: "compress_certificate", 28: "record_size_limit", 34: "delegated_credential",
    35: "session_ticket", 41: "pre_shared_key", 42: "early_data", 43: "supported_versions",
    44: "cookie", 45: "psk_key_exchange_modes", 47: "certificate_authorities", 48: "oid_filters",
    49: "post_handshake_auth", 50: "signature_algorithms_cert", 51: "key_share",
    57: "quic_transport_parameters", 13172: "next_protocol_negotiation",
    17513: "application_settings_old", 17613: "application_settings",
    65037: "encrypted_client_hello", 65281: "renegotiation_info",
}

CIPHER_SUITES = {
    0x0000: "TLS_NULL_WITH_NULL_NULL",
    0x0001: "TLS_RSA_WITH_NULL_MD5",
    0x0002: "TLS_RSA_WITH_NULL_SHA",
    0x0003: "TLS_RSA_EXPORT_WITH_RC4_40_MD5",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x0006: "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5",
    0x0007: "TLS_RSA_WITH_IDEA_CBC_SHA",
    0x0008: "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x0009: "TLS_RSA_WITH_DES_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0011: "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA",
    0x0012: "TLS_DHE_DSS_WITH_DES_CBC_SHA",
    0x0013: "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
    0x0014: "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x0015: "TLS_DHE_RSA_WITH_DES_CBC_SHA",
    0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0018: "TLS_DH_anon_WITH_RC4_128_MD5",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0030: "TLS_DH_DSS_WITH_AES_128_CBC_SHA",
    0x0031: "TLS_DH_RSA_WITH_AES_128_CBC_SHA",
    0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0034: "TLS_DH_anon_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x0036: "TLS_DH_DSS_WITH_AES_256_CBC_SHA",
    0x0037: "TLS_DH_RSA_WITH_AES_256_CBC_SHA",
    0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x003A: "TLS_DH_anon_WITH_AES_256_CBC_SHA",
    0x003B: "TLS_RSA_WITH_NULL_SHA256",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x003E: "TLS_DH_DSS_WITH_AES_128_CBC_SHA256",
    0x003F: "TLS_DH_RSA_WITH_AES_128_CBC_SHA256",
    0x0040: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
    0x0041: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0045: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x0068: "TLS_DH_DSS_WITH_AES_256_CBC_SHA256",
    0x0069: "TLS_DH_RSA_WITH_AES_256_CBC_SHA256",
    0x006A: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x006C: "TLS_DH_anon_WITH_AES_128_CBC_SHA256",
    0x006D: "TLS_DH_anon_WITH_AES_256_CBC_SHA256",
    0x0084: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0088: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x008A: "TLS_PSK_WITH_RC4_128_SHA",
    0x008B: "TLS_PSK_WITH_3DES_EDE_CBC_SHA",
    0x008C: "TLS_PSK_WITH_AES_128_CBC_SHA",
    0x008D: "TLS_PSK_WITH_AES_256_CBC_SHA",
    0x0090: "TLS_DHE_PSK_WITH_AES_128_CBC_SHA",
    0x0091: "TLS_DHE_PSK_WITH_AES_256_CBC_SHA",
    0x0094: "TLS_RSA_PSK_WITH_AES_128_CBC_SHA",
    0x0095: "TLS_RSA_PSK_WITH_AES_256_CBC_SHA",
    0x0096: "TLS_RSA_WITH_SEED_CBC_SHA",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x00A0: "TLS_DH_RSA_WITH_AES_128_GCM_SHA256",
    0x00A1: "TLS_DH_RSA_WITH_AES_256_GCM_SHA384",
    0x00A2: "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
    0x00A3: "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
    0x00A4: "TLS_DH_DSS_WITH_AES_128_GCM_SHA256",
    0x00A5: "TLS_DH_DSS_WITH_AES_256_GCM_SHA384",
    0x00A6: "TLS_DH_anon_WITH_AES_128_GCM_SHA256",
    0x00A7: "TLS_DH_anon_WITH_AES_256_GCM_SHA384",
    0x00A8: "TLS_PSK_WITH_AES_128_GCM_SHA256",
    0x00A9: "TLS_PSK_WITH_AES_256_GCM_SHA384",
    0x00AA: "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256",
    0x00AB: "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384",
    0x00AC: "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256",
    0x00AD: "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384",
    0x00AE: "TLS_PSK_WITH_AES_128_CBC_SHA256",
    0x00AF: "TLS_PSK_WITH_AES_256_CBC_SHA384",
    0x00B2: "TLS_DHE_PSK_WITH_AES_128_CBC_SHA256",
    0x00B3: "TLS_DHE_PSK_WITH_AES_256_CBC_SHA384",
    0x00B6: "TLS_RSA_PSK_WITH_AES_128_CBC_SHA256",
    0x00B7: "TLS_RSA_PSK_WITH_AES_256_CBC_SHA384",
    0x00BA: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BE: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0x00C0: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C4: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0x5600: "TLS_FALLBACK_SCSV",
    0xC001: "TLS_ECDH_ECDSA_WITH_NULL_SHA",
    0xC002: "TLS_ECDH_ECDSA_WITH_RC4_128_SHA",
    0xC003: "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA",
    0xC004: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA",
    0xC005: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA",
    0xC006: "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
    0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    0xC008: "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC00B: "TLS_ECDH_RSA_WITH_NULL_SHA",
    0xC00C: "TLS_ECDH_RSA_WITH_RC4_128_SHA",
    0xC00D: "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC00E: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA",
    0xC00F: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA",
    0xC010: "TLS_ECDHE_RSA_WITH_NULL_SHA",
    0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC015: "TLS_ECDH_anon_WITH_NULL_SHA",
    0xC016: "TLS_ECDH_anon_WITH_RC4_128_SHA",
    0xC017: "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA",
    0xC018: "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
    0xC019: "TLS_ECDH_anon_WITH_AES_256_CBC_SHA",
    0xC01A: "TLS_SRP_SHA_WITH_3DES_EDE_CBC_SHA",
    0xC01B: "TLS_SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC01C: "TLS_SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA",
    0xC01D: "TLS_SRP_SHA_WITH_AES_128_CBC_SHA",
    0xC01E: "TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA",
    0xC01F: "TLS_SRP_SHA_DSS_WITH_AES_128_CBC_SHA",
    0xC020: "TLS_SRP_SHA_WITH_AES_256_CBC_SHA",
    0xC021: "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA",
    0xC022: "TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC025: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC026: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC029: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256",
    0xC02A: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02D: "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02E: "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC031: "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256",
    0xC032: "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384",
    0xC035: "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA",
    0xC036: "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA",
    0xC037: "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256",
    0xC038: "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384",
    0xC072: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC073: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC076: "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC077: "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC09C: "TLS_RSA_WITH_AES_128_CCM",
    0xC09D: "TLS_RSA_WITH_AES_256_CCM",
    0xC09E: "TLS_DHE_RSA_WITH_AES_128_CCM",
    0xC09F: "TLS_DHE_RSA_WITH_AES_256_CCM",
    0xC0A0: "TLS_RSA_WITH_AES_128_CCM_8",
    0xC0A1: "TLS_RSA_WITH_AES_256_CCM_8",
    0xC0A2: "TLS_DHE_RSA_WITH_AES_128_CCM_8",
    0xC0A3: "TLS_DHE_RSA_WITH_AES_256_CCM_8",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xC0AE: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    0xC0AF: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAB: "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAC: "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAD: "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAE: "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256",
}

#: JA4's two-character version codes (JA4.md "TLS and DTLS Version").
_JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
                 0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}

_EXT_SERVER_NAME = 0x0000
_EXT_SUPPORTED_GROUPS = 0x000A
_EXT_EC_POINT_FORMATS = 0x000B
_EXT_SIGNATURE_ALGORITHMS = 0x000D
_EXT_ALPN = 0x0010
_EXT_SUPPORTED_VERSIONS = 0x002B


def is_grease(value: int) -> bool:
    """True for RFC 8701 GREASE values (0x0A0A, 0x1A1A, ... 0xFAFA), which fingerprints ignore."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def version_name(version: int) -> str:
    """Display name of a protocol version; unknown values as ``0x7F1C`` so they stay visible."""
    if version in VERSIONS:
        return VERSIONS[version]
    if is_grease(version):
        return "GREASE"
    return f"0x{version:04X}"


def cipher_name(suite: int) -> str:
    """IANA name of a cipher suite; GREASE as ``GREASE``, unknown values as ``0xC0FF``."""
    if suite in CIPHER_SUITES:
        return CIPHER_SUITES[suite]
    if is_grease(suite):
        return "GREASE"
    return f"0x{suite:04X}"


def thumbprint(der: bytes, algorithm: str = "sha1") -> str:
    """Certificate thumbprint the way vSphere writes it: ``AB:CD:...`` (authd's THUMBPRINT reply)."""
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


# ---------------------------------------------------------------------------------------------
# Record and handshake headers
# ---------------------------------------------------------------------------------------------

def parse_record_header(buf: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Return ``(content_type, version, length)`` of the record header at *offset*.

    NeedMoreData when fewer than 5 bytes are there; Malformed when the bytes cannot be a
    TLS record header (that is how the caller learns the stream is no longer TLS).
    """
    if offset < 0 or len(buf) - offset < RECORD_HEADER.size:
        raise NeedMoreData(f"record header needs {RECORD_HEADER.size} bytes")
    content_type, version, length = RECORD_HEADER.unpack_from(buf, offset)
    if content_type not in CONTENT_TYPES:
        raise Malformed(f"record content type {content_type} is not 20..24")
    if version >> 8 != 3:
        raise Malformed(f"record version 0x{version:04X} does not have major version 3")
    if length > MAX_RECORD_LENGTH:
        raise Malformed(f"record length {length} exceeds {MAX_RECORD_LENGTH}")
    return content_type, version, length


def plausible_record_header(buf: bytes, offset: int = 0, partial: bool = False) -> bool:
    """True if the bytes at *offset* are a well-formed record header.

    With ``partial=True`` a header cut short counts as plausible as long as the bytes that
    are there do not already rule it out (used at chunk boundaries).
    """
    head = bytes(buf[offset:offset + RECORD_HEADER.size]) if offset >= 0 else b""
    if len(head) < RECORD_HEADER.size:
        if not partial:
            return False
        if len(head) >= 1 and head[0] not in CONTENT_TYPES:
            return False
        if len(head) >= 2 and head[1] != 3:
            return False
        # length high byte alone already exceeds the maximum?
        return not (len(head) == 4 and head[3] << 8 > MAX_RECORD_LENGTH)
    try:
        parse_record_header(head)
    except (Malformed, NeedMoreData):
        return False
    return True


def parse_handshake_header(buf: bytes, offset: int = 0) -> tuple[int, int]:
    """Return ``(msg_type, length)`` of the 4-byte handshake header at *offset*."""
    if offset < 0 or len(buf) - offset < HANDSHAKE_HEADER.size:
        raise NeedMoreData(f"handshake header needs {HANDSHAKE_HEADER.size} bytes")
    (word,) = HANDSHAKE_HEADER.unpack_from(buf, offset)
    return word >> 24, word & 0xFFFFFF


def parse_alert(body: bytes) -> tuple[int, int]:
    """Return ``(level, description)`` of a clear-text alert.

    NeedMoreData below 2 bytes (TLS <= 1.2 lets an alert be split across records);
    Malformed for a level that is neither warning nor fatal.
    """
    if len(body) < ALERT.size:
        raise NeedMoreData("alert needs 2 bytes")
    level, description = ALERT.unpack_from(body, 0)
    if level not in ALERT_LEVELS:
        raise Malformed(f"alert level {level} is neither warning (1) nor fatal (2)")
    return level, description


# ---------------------------------------------------------------------------------------------
# Hello messages
# ---------------------------------------------------------------------------------------------

class _Reader:
    """Cursor over one complete message; any overrun is Malformed, since no more bytes can come."""

    __slots__ = ("buf", "pos", "what")

    def __init__(self, buf: bytes, what: str) -> None:
        self.buf = bytes(buf)
        self.pos = 0
        self.what = what

    @property
    def left(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int, name: str) -> bytes:
        if n > self.left:
            raise Malformed(f"{self.what}: {name} needs {n} bytes, {self.left} left")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, name: str) -> int:
        return int.from_bytes(self.take(size, name), "big")

    def vector(self, length_size: int, name: str) -> bytes:
        return self.take(self.uint(length_size, f"{name} length"), name)

    def finish(self) -> None:
        if self.left:
            raise Malformed(f"{self.what}: {self.left} trailing bytes")


def _u16_list(data: bytes, what: str) -> list[int]:
    if len(data) % 2:
        raise Malformed(f"{what}: odd length {len(data)} for a list of uint16")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def _extensions(r: _Reader) -> list[tuple[int, bytes]]:
    """Extension block: absent (SSL 3.0 style) or a uint16-length list of (type, data)."""
    if not r.left:
        return []
    block = _Reader(r.vector(2, "extensions"), r.what)
    r.finish()
    out = []
    while block.left:
        ext_type = block.uint(2, "extension type")
        out.append((ext_type, block.vector(2, f"extension {ext_type} data")))
    return out


def _parse_sni(data: bytes) -> str | None:
    r = _Reader(data, "server_name")
    names = _Reader(r.vector(2, "server_name_list"), "server_name")
    r.finish()
    host = None
    while names.left:
        name_type = names.uint(1, "name_type")
        name = names.vector(2, "host_name")
        if name_type == 0 and host is None:
            host = name.decode("latin-1")
    return host


def _parse_alpn(data: bytes) -> list[bytes]:
    r = _Reader(data, "application_layer_protocol_negotiation")
    names = _Reader(r.vector(2, "protocol_name_list"), r.what)
    r.finish()
    out = []
    while names.left:
        out.append(names.vector(1, "protocol_name"))
    return out


def _parse_u8_vector_u16(data: bytes, what: str) -> list[int]:
    r = _Reader(data, what)
    values = _u16_list(r.vector(1, what), what)
    r.finish()
    return values


def _parse_u16_vector_u16(data: bytes, what: str) -> list[int]:
    r = _Reader(data, what)
    values = _u16_list(r.vector(2, what), what)
    r.finish()
    return values


def _parse_u8_vector_u8(data: bytes, what: str) -> list[int]:
    r = _Reader(data, what)
    values = list(r.vector(1, what))
    r.finish()
    return values


def _first(extensions: list[tuple[int, bytes]], ext_type: int) -> bytes | None:
    for t, data in extensions:
        if t == ext_type:
            return data
    return None


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A parsed ClientHello; lists keep wire order and GREASE values (fingerprints drop them)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    compression_methods: list[int]
    extensions: list[tuple[int, bytes]]
    server_name: str | None = None
    alpn: list[str] = field(default_factory=list)  # Latin-1 decoded, so every byte survives
    supported_versions: list[int] = field(default_factory=list)
    supported_groups: list[int] = field(default_factory=list)
    ec_point_formats: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)

    @property
    def extension_types(self) -> list[int]:
        """Extension type numbers in wire order."""
        return [t for t, _ in self.extensions]

    @property
    def offered_versions(self) -> list[int]:
        """Versions the client offers: supported_versions (TLS 1.3 style) or the legacy field."""
        versions = [v for v in self.supported_versions if not is_grease(v)]
        return versions or [self.legacy_version]

    @property
    def max_version(self) -> int:
        """Highest version offered; what a server would pick if it supports everything."""
        return max(self.offered_versions)

    @property
    def ja3_string(self) -> str:
        """Salesforce JA3 input: version,ciphers,extensions,groups,point formats (GREASE removed)."""
        def dash(values: list[int]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))
        return ",".join((str(self.legacy_version), dash(self.cipher_suites),
                         dash(self.extension_types), dash(self.supported_groups),
                         dash(self.ec_point_formats)))

    @property
    def ja3(self) -> str:
        """JA3 fingerprint: MD5 of :attr:`ja3_string`, lowercase hex."""
        return hashlib.md5(self.ja3_string.encode("ascii"), usedforsecurity=False).hexdigest()

    def _ja4_parts(self) -> tuple[str, str, str, str]:
        """JA4 a-section, sorted cipher list, sorted extension list (no SNI/ALPN), sigalgs."""
        ciphers = [c for c in self.cipher_suites if not is_grease(c)]
        extensions = [t for t in self.extension_types if not is_grease(t)]
        if _first(self.extensions, _EXT_SUPPORTED_VERSIONS) is not None:
            offered = [v for v in self.supported_versions if not is_grease(v)]
            version = max(offered) if offered else self.legacy_version
        else:
            version = self.legacy_version
        alpn_raw = b""
        alpn_data = _first(self.extensions, _EXT_ALPN)
        if alpn_data is not None:
            try:
                protocols = _parse_alpn(alpn_data)
            except Malformed:
                protocols = []
            alpn_raw = protocols[0] if protocols else b""
        if not alpn_raw:
            alpn = "00"
        elif _alnum(alpn_raw[0]) and _alnum(alpn_raw[-1]):
            alpn = chr(alpn_raw[0]) + chr(alpn_raw[-1])
        else:
            hexed = alpn_raw.hex()
            alpn = hexed[0] + hexed[-1]
        sni = "d" if _EXT_SERVER_NAME in extensions else "i"
        a = (f"t{_JA4_VERSIONS.get(version, '00')}{sni}"
             f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn}")
        b = ",".join(f"{c:04x}" for c in sorted(ciphers))
        c = ",".join(f"{t:04x}" for t in sorted(extensions) if t not in (_EXT_SERVER_NAME, _EXT_ALPN))
        sigs = ",".join(f"{s:04x}" for s in self.signature_algorithms if not is_grease(s))
        return a, b, c, sigs

    @property
    def ja4(self) -> str:
        """FoxIO JA4 (TLS over TCP), e.g. ``t13d1516h2_8daaf6152771_e5627efa2ab1``."""
        a, b, c, sigs = self._ja4_parts()
        b_hash = _hash12(b) if b else "000000000000"
        c_hash = _hash12(f"{c}_{sigs}" if sigs else c) if c else "000000000000"
        return f"{a}_{b_hash}_{c_hash}"

    @property
    def ja4_r(self) -> str:
        """JA4 raw form: the sorted lists themselves instead of their hashes."""
        a, b, c, sigs = self._ja4_parts()
        return f"{a}_{b}_{c}_{sigs}" if sigs else f"{a}_{b}_{c}"


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header).

    The body is a complete message, so anything cut short is Malformed.
    """
    r = _Reader(body, "client_hello")
    legacy_version = r.uint(2, "legacy_version")
    random = r.take(32, "random")
    session_id = r.vector(1, "legacy_session_id")
    if len(session_id) > 32:
        raise Malformed(f"client_hello: session_id of {len(session_id)} bytes (max 32)")
    cipher_suites = _u16_list(r.vector(2, "cipher_suites"), "client_hello cipher_suites")
    if not cipher_suites:
        raise Malformed("client_hello: empty cipher_suites")
    compression_methods = list(r.vector(1, "legacy_compression_methods"))
    if not compression_methods:
        raise Malformed("client_hello: empty compression_methods")
    extensions = _extensions(r)
    server_name = None
    alpn: list[str] = []
    supported_versions: list[int] = []
    supported_groups: list[int] = []
    ec_point_formats: list[int] = []
    signature_algorithms: list[int] = []
    seen = set()
    for ext_type, data in extensions:
        if ext_type in seen:
            continue  # RFC 8446 §4.2 forbids duplicates; the first one counts
        seen.add(ext_type)
        if ext_type == _EXT_SERVER_NAME:
            server_name = _parse_sni(data)
        elif ext_type == _EXT_ALPN:
            alpn = [p.decode("latin-1") for p in _parse_alpn(data)]
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            supported_versions = _parse_u8_vector_u16(data, "supported_versions")
        elif ext_type == _EXT_SUPPORTED_GROUPS:
            supported_groups = _parse_u16_vector_u16(data, "supported_groups")
        elif ext_type == _EXT_EC_POINT_FORMATS:
            ec_point_formats = _parse_u8_vector_u8(data, "ec_point_formats")
        elif ext_type == _EXT_SIGNATURE_ALGORITHMS:
            signature_algorithms = _parse_u16_vector_u16(data, "signature_algorithms")
    return ClientHello(legacy_version, random, session_id, cipher_suites, compression_methods,
                       extensions, server_name, alpn, supported_versions, supported_groups,
                       ec_point_formats, signature_algorithms)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A parsed ServerHello (or TLS 1.3 HelloRetryRequest, which shares its format)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression: int
    extensions: list[tuple[int, bytes]]
    selected_version: int
    alpn: str | None = None

    @property
    def is_hello_retry_request(self) -> bool:
        """TLS 1.3 marks a HelloRetryRequest by a fixed random (RFC 8446 §4.1.3)."""
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    @property
    def cipher_name(self) -> str:
        return cipher_name(self.cipher_suite)

    @property
    def ja3s_string(self) -> str:
        """JA3S input: version,cipher,extensions (decimal)."""
        exts = "-".join(str(t) for t, _ in self.extensions)
        return f"{self.legacy_version},{self.cipher_suite},{exts}"

    @property
    def ja3s(self) -> str:
        """JA3S fingerprint: MD5 of :attr:`ja3s_string`."""
        return hashlib.md5(self.ja3s_string.encode("ascii"), usedforsecurity=False).hexdigest()


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello handshake body (after the 4-byte handshake header)."""
    r = _Reader(body, "server_hello")
    legacy_version = r.uint(2, "legacy_version")
    random = r.take(32, "random")
    session_id = r.vector(1, "legacy_session_id")
    if len(session_id) > 32:
        raise Malformed(f"server_hello: session_id of {len(session_id)} bytes (max 32)")
    cipher_suite = r.uint(2, "cipher_suite")
    compression = r.uint(1, "legacy_compression_method")
    extensions = _extensions(r)
    selected_version = legacy_version
    alpn = None
    versions = _first(extensions, _EXT_SUPPORTED_VERSIONS)
    if versions is not None:
        if len(versions) != 2:
            raise Malformed(f"server_hello: supported_versions of {len(versions)} bytes (want 2)")
        selected_version = int.from_bytes(versions, "big")
    alpn_data = _first(extensions, _EXT_ALPN)
    if alpn_data is not None:
        protocols = _parse_alpn(alpn_data)
        alpn = protocols[0].decode("latin-1") if protocols else None
    return ServerHello(legacy_version, random, session_id, cipher_suite, compression,
                       extensions, selected_version, alpn)


# ---------------------------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------------------------

def parse_certificate_list(body: bytes) -> list[bytes]:
    """DER certificates of a TLS <= 1.2 Certificate body (uint24 list of uint24-length certs)."""
    r = _Reader(body, "certificate")
    certs = _Reader(r.vector(3, "certificate_list"), "certificate")
    r.finish()
    out = []
    while certs.left:
        der = certs.vector(3, "ASN.1Cert")
        if not der:
            raise Malformed("certificate: empty ASN.1Cert")
        out.append(der)
    return out


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What an analyst wants from a certificate; fields that could not be read are None."""

    sha1: str
    sha256: str
    der_length: int
    subject: str | None = None
    issuer: str | None = None
    common_name: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    serial: str | None = None
    key_type: str | None = None
    key_size: int | None = None
    key_curve: str | None = None
    signature_algorithm: str | None = None
    self_signed: bool | None = None
    parse_error: str | None = None
    notes: tuple[str, ...] = ()


_S = SignatureAlgorithmOID
#: Common signature algorithm OIDs by their RFC names; others are shown as dotted OIDs.
_SIGNATURE_ALGORITHMS = {
    _S.RSA_WITH_MD5: "md5WithRSAEncryption", _S.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    _S.RSA_WITH_SHA224: "sha224WithRSAEncryption", _S.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    _S.RSA_WITH_SHA384: "sha384WithRSAEncryption", _S.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    _S.RSASSA_PSS: "rsassaPss", _S.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    _S.ECDSA_WITH_SHA224: "ecdsa-with-SHA224", _S.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    _S.ECDSA_WITH_SHA384: "ecdsa-with-SHA384", _S.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    _S.DSA_WITH_SHA1: "dsa-with-sha1", _S.DSA_WITH_SHA224: "dsa-with-sha224",
    _S.DSA_WITH_SHA256: "dsa-with-sha256", _S.ED25519: "ed25519", _S.ED448: "ed448",
}


_KEY_TYPES = ((rsa.RSAPublicKey, "RSA"), (ec.EllipticCurvePublicKey, "EC"),
              (dsa.DSAPublicKey, "DSA"), (ed25519.Ed25519PublicKey, "Ed25519"),
              (ed448.Ed448PublicKey, "Ed448"), (x25519.X25519PublicKey, "X25519"),
              (x448.X448PublicKey, "X448"))
_FIXED_KEY_BITS = {"Ed25519": 256, "Ed448": 456, "X25519": 256, "X448": 448}


def _describe_key(key) -> tuple[str, int | None, str | None]:
    """(key type, size in bits, curve name) of a public key object."""
    for cls, name in _KEY_TYPES:
        if isinstance(key, cls):
            break
    else:
        return type(key).__name__, None, None
    if name == "EC":
        return name, key.curve.key_size, key.curve.name
    return name, getattr(key, "key_size", _FIXED_KEY_BITS.get(name)), None


def certificate_summary(der: bytes) -> CertificateInfo:
    """Summarise one DER certificate; never raises, whatever the bytes.

    Thumbprints are always there (they are what authd and tickets pin); every other field
    is read on its own, so one odd extension or name does not hide the rest.
    """
    der = bytes(der)
    sha1, sha256 = thumbprint(der, "sha1"), thumbprint(der, "sha256")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cert = x509.load_der_x509_certificate(der)
        except Exception as exc:  # cryptography raises ValueError and friends; never escape
            return CertificateInfo(sha1, sha256, len(der), parse_error=f"{type(exc).__name__}: {exc}")
        values: dict = {}
        errors: list[str] = []

        def read(name: str, getter) -> None:
            try:
                values[name] = getter()
            except Exception as exc:  # one unreadable field must not hide the others
                errors.append(f"{name}: {type(exc).__name__}: {exc}")

        read("subject", lambda: cert.subject.rfc4514_string())
        read("issuer", lambda: cert.issuer.rfc4514_string())

        def common_name():
            attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if not attrs:
                return None
            value = attrs[0].value
            return value.decode("latin-1") if isinstance(value, bytes) else value

        read("common_name", common_name)
        read("not_before", lambda: cert.not_valid_before_utc)
        read("not_after", lambda: cert.not_valid_after_utc)
        read("serial", lambda: format(cert.serial_number, "x"))

        def key():
            try:
                return _describe_key(cert.public_key())
            except Exception:
                return cert.public_key_algorithm_oid.dotted_string, None, None

        read("key", key)
        read("signature_algorithm", lambda: _SIGNATURE_ALGORITHMS.get(
            cert.signature_algorithm_oid, cert.signature_algorithm_oid.dotted_string))
        read("self_signed", lambda: cert.subject == cert.issuer)
    key_type, key_size, key_curve = values.get("key", (None, None, None))
    return CertificateInfo(
        sha1, sha256, len(der),
        subject=values.get("subject"), issuer=values.get("issuer"),
        common_name=values.get("common_name"), not_before=values.get("not_before"),
        not_after=values.get("not_after"), serial=values.get("serial"),
        key_type=key_type, key_size=key_size, key_curve=key_curve,
        signature_algorithm=values.get("signature_algorithm"),
        self_signed=values.get("self_signed"),
        parse_error="; ".join(errors) or None,
        notes=tuple(str(w.message) for w in caught),
    )


# ---------------------------------------------------------------------------------------------
# Handshake reassembly
# ---------------------------------------------------------------------------------------------

class HandshakeTooLarge(Malformed):
    """A handshake header announced more than the cap; carries what completed before it."""

    def __init__(self, msg_type: int, length: int, completed: list[tuple[int, bytes]],
                 limit: int = MAX_HANDSHAKE_MESSAGE) -> None:
        super().__init__(f"handshake message type {msg_type} of {length} bytes exceeds {limit}")
        self.msg_type = msg_type
        self.length = length
        self.completed = completed


class HandshakeReassembler:
    """Handshake messages out of handshake-record payloads.

    A message may span records and a record may hold several messages (RFC 5246 §6.2.1).
    A message larger than *max_message* raises :class:`HandshakeTooLarge` (a Malformed); its
    body is then discarded as it streams past, so later messages stay in step.
    """

    def __init__(self, max_message: int = MAX_HANDSHAKE_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._discard = 0

    @property
    def pending(self) -> int:
        """Bytes held (or still to discard) that do not yet form a complete message."""
        return len(self._buf) + self._discard

    def reset(self) -> None:
        """Forget any partial message (after a gap or when a new handshake starts)."""
        self._buf.clear()
        self._discard = 0

    def skip(self, nbytes: int) -> bool:
        """Account for *nbytes* lost inside the message being collected.

        Returns True when the loss stays inside that message (it is dropped, later messages
        stay in step) and False when the framing is lost; the caller then calls reset().
        """
        if self._discard:
            if nbytes > self._discard:
                return False
            self._discard -= nbytes
            return True
        if len(self._buf) < HANDSHAKE_HEADER.size:
            return False
        _, length = parse_handshake_header(self._buf)
        remaining = HANDSHAKE_HEADER.size + length - len(self._buf)
        if nbytes > remaining:
            return False
        self._buf.clear()
        self._discard = remaining - nbytes
        return True

    def feed(self, payload: bytes) -> list[tuple[int, bytes]]:
        """Add one record payload; return the ``(msg_type, body)`` pairs it completed."""
        view = memoryview(payload)
        if self._discard:
            skip = min(self._discard, len(view))
            self._discard -= skip
            view = view[skip:]
        self._buf += view
        out: list[tuple[int, bytes]] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= HANDSHAKE_HEADER.size:
            msg_type, length = parse_handshake_header(buf, pos)
            if length > self.max_message:
                available = len(buf) - pos - HANDSHAKE_HEADER.size
                if available >= length:
                    del buf[:pos + HANDSHAKE_HEADER.size + length]
                else:
                    self._discard = length - available
                    buf.clear()
                raise HandshakeTooLarge(msg_type, length, out, self.max_message)
            end = pos + HANDSHAKE_HEADER.size + length
            if end > len(buf):
                break
            out.append((msg_type, bytes(buf[pos + HANDSHAKE_HEADER.size:end])))
            pos = end
        del buf[:pos]
        return out


# ---------------------------------------------------------------------------------------------
# Events of the incremental parser
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TlsRecord:
    """A record header; ts/frame are those of the chunk holding the header's first byte."""

    ts: float
    frame: int
    content_type: int
    version: int
    length: int
    encrypted: bool


@dataclass(frozen=True, slots=True)
class TlsHandshakeMessage:
    """A complete clear-text handshake message; ts/frame of the record where it started.

    ``parsed`` is a ClientHello, a ServerHello, a list of CertificateInfo, or None.
    """

    ts: float
    frame: int
    msg_type: int
    parsed: object
    length: int = 0


@dataclass(frozen=True, slots=True)
class TlsAlert:
    """An alert; level/description are names (unknown numbers as ``unknown(N)``), None if encrypted."""

    ts: float
    frame: int
    level: str | None
    description: str | None
    encrypted: bool


@dataclass(frozen=True, slots=True)
class TlsChangeCipherSpec:
    """This direction's later handshake records are encrypted (TLS <= 1.2; dummy in 1.3)."""

    ts: float
    frame: int


@dataclass(frozen=True, slots=True)
class TlsNewHandshake:
    """A fresh hello after protected traffic: TLS #2 started on the raw stream (protocol.md §4.2)."""

    ts: float
    frame: int
    hello: object


@dataclass(frozen=True, slots=True)
class TlsEnd:
    """The stream stopped being TLS at a record boundary; ``remainder`` is for the next parser."""

    ts: float
    frame: int
    reason: str
    remainder: bytes


@dataclass(frozen=True, slots=True)
class TlsWeird:
    """Something malformed or unexpected, reported instead of raised (Zeek's weird.log)."""

    ts: float
    frame: int
    kind: str
    detail: str


# ---------------------------------------------------------------------------------------------
# Incremental per-direction parser
# ---------------------------------------------------------------------------------------------

_HEADER, _SKIP, _HANDSHAKE, _COLLECT, _PROBE, _RESYNC, _ENDED = range(7)
_HELLO_TYPES = {"client": (1,), "server": (2,), None: (1, 2)}
_MIN_HELLO = 38  # 2 version + 32 random + 1 session_id length + 2 cipher + 1 compression


def _alert_names(level: int, description: int) -> tuple[str, str]:
    return (ALERT_LEVELS.get(level, f"unknown({level})"),
            ALERT_DESCRIPTIONS.get(description, f"unknown({description})"))


class TlsDirection:
    """Record-layer parser for one direction of one TCP stream.

    ``feed()`` takes chunks split anywhere and returns events.  Encrypted bodies are
    skipped by count; only clear handshake, alert and CCS bodies are looked at.  *role*
    (``"client"`` or ``"server"``) says which hello starts a handshake here; if None it is
    learnt from the first hello.

    Counters: ``records``, ``bytes`` (header + body bytes seen), ``app_data_records``,
    ``app_data_bytes`` (body bytes seen), ``bytes_lost`` (reported by gap()),
    ``handshake_count`` (1 after the first hello, +1 per TlsNewHandshake).
    A second hello counts as a new handshake only after this direction sent protected
    records since its last hello, so a HelloRetryRequest's second ClientHello does not.
    """

    def __init__(self, role: str | None = None) -> None:
        if role not in _HELLO_TYPES:
            raise ValueError(f"role must be 'client', 'server' or None, not {role!r}")
        self.role = role
        self.encrypted = False
        self.handshake_count = 0
        self.version: int | None = None
        self.records = 0
        self.bytes = 0
        self.app_data_records = 0
        self.app_data_bytes = 0
        self.bytes_lost = 0
        self.end: TlsEnd | None = None
        self._mode = _HEADER
        self._hdr = bytearray()
        self._hdr_origin = (0.0, 0)
        self._rec_origin = (0.0, 0)
        self._type = 0
        self._rec_len = 0
        self._left = 0
        self._body = bytearray()
        self._record_emitted = True
        self._protected_seen = False  # encrypted records sent since this direction's last hello
        self._reasm = HandshakeReassembler()
        self._hs_origin = (0.0, 0)
        self._sync = bytearray()
        self._skipped = 0
        self._unconfirmed = 0  # headers still to see after a resync before a bad one means TlsEnd

    # -- public API ----------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once TlsEnd was emitted; the rest of the stream belongs to another parser."""
        return self._mode == _ENDED

    def mark_encrypted(self) -> None:
        """The caller knows later handshake records of this direction are encrypted (TLS 1.3)."""
        self.encrypted = True

    def feed(self, data: bytes, ts: float, frame: int) -> list:
        """Parse the next chunk of this direction's bytes; return the events it completed."""
        if self._mode == _ENDED:
            raise RuntimeError("TLS parsing ended (not_tls); hand later bytes to another parser")
        events: list = []
        data = bytes(data)
        pos = 0
        while pos < len(data):
            mode = self._mode
            if mode == _HEADER:
                data, pos = self._read_header(data, pos, ts, frame, events)
            elif mode == _RESYNC:
                data, pos = self._resync(data, pos, ts, frame, events)
            else:
                # record body: skipped by count unless it is clear and worth reading
                take = min(self._left, len(data) - pos)
                if mode == _HANDSHAKE:
                    self._handshake_bytes(data[pos:pos + take], events)
                elif mode in (_COLLECT, _PROBE):
                    self._body += memoryview(data)[pos:pos + take]
                pos += take
                self._left -= take
                self.bytes += take
                if self._type == 23:
                    self.app_data_bytes += take
                if mode == _PROBE and len(self._body) >= 6 and self._left:
                    self._probe_prefix(events)
                if self._left == 0:
                    self._record_done(events)
        return events

    def gap(self, nbytes: int, ts: float, frame: int) -> list:
        """The capture lost *nbytes* of this direction; stay in step if the loss allows it."""
        if self._mode == _ENDED:
            raise RuntimeError("TLS parsing ended (not_tls); hand later bytes to another parser")
        if nbytes < 0:
            raise ValueError("gap size must not be negative")
        events: list = []
        if nbytes == 0:
            return events
        self.bytes_lost += nbytes
        mode = self._mode
        if mode == _RESYNC:
            self._sync.clear()
            return events
        if mode != _HEADER and nbytes <= self._left:
            # record framing survives; in a clear record, what the bytes belonged to does not
            self._left -= nbytes
            if mode != _SKIP:
                self._emit_pending_record(events)
                events.append(TlsWeird(ts, frame, "gap_in_record",
                                       f"{nbytes} bytes lost inside a "
                                       f"{CONTENT_TYPES[self._type]} record"))
                self._body.clear()
                kept = mode == _HANDSHAKE and self._reasm.skip(nbytes)
                if not kept:
                    if mode == _HANDSHAKE:
                        self._reasm.reset()
                    self._mode = _SKIP
            if self._left == 0:
                self._mode = _HEADER
            return events
        self._emit_pending_record(events)
        where = "a record header" if mode == _HEADER else "the end of a record"
        events.append(TlsWeird(ts, frame, "gap_desync",
                               f"{nbytes} bytes lost across {where}; resynchronising"))
        self._reasm.reset()
        self._hdr.clear()
        self._body.clear()
        self._sync.clear()
        self._skipped = 0
        self._mode = _RESYNC
        return events

    def finish(self, ts: float, frame: int) -> list:
        """The stream ended; report a record or message cut short.  Call once, at the end."""
        events: list = []
        if self._mode == _ENDED:
            return events
        if self._mode == _RESYNC:
            events.append(TlsWeird(ts, frame, "truncated",
                                   "stream ended while resynchronising"))
            return events
        self._emit_pending_record(events)
        if self._hdr:
            events.append(TlsWeird(ts, frame, "truncated",
                                   f"stream ended {len(self._hdr)} bytes into a record header"))
        elif self._mode != _HEADER:
            events.append(TlsWeird(ts, frame, "truncated",
                                   f"stream ended {self._left} bytes before the end of a "
                                   f"{CONTENT_TYPES[self._type]} record"))
        elif self._reasm.pending:
            events.append(TlsWeird(ts, frame, "truncated",
                                   "stream ended inside a handshake message"))
        return events

    # -- records -------------------------------------------------------------------------------

    def _read_header(self, data: bytes, pos: int, ts: float, frame: int, events: list):
        if not self._hdr:
            self._hdr_origin = (ts, frame)
        piece = data[pos:pos + RECORD_HEADER.size - len(self._hdr)]
        self._hdr += piece
        pos += len(piece)
        if not plausible_record_header(self._hdr, partial=True):
            rest = bytes(self._hdr) + data[pos:]
            self._hdr.clear()
            if self._unconfirmed:
                # the resync candidate was a false one: keep looking instead of giving up on TLS
                self._unconfirmed = 0
                events.append(TlsWeird(ts, frame, "resync_failed",
                                       "record after a resync point is not TLS; resynchronising"))
                self._mode = _RESYNC
                self._sync.clear()
                self._skipped = 1
                return rest[1:], 0
            self.end = TlsEnd(*self._hdr_origin, "not_tls", rest)
            events.append(self.end)
            self._mode = _ENDED
            return data, len(data)
        if len(self._hdr) == RECORD_HEADER.size:
            content_type, version, length = RECORD_HEADER.unpack(self._hdr)
            self._hdr.clear()
            if self._unconfirmed:
                self._unconfirmed -= 1
            self._start_record(content_type, version, length, events)
        return data, pos

    def _start_record(self, content_type: int, version: int, length: int, events: list) -> None:
        self.records += 1
        self.bytes += RECORD_HEADER.size
        self.version = version
        self._type, self._rec_len, self._left = content_type, length, length
        self._rec_origin = self._hdr_origin
        self._body.clear()
        self._record_emitted = True
        ts, frame = self._rec_origin

        def record(encrypted: bool) -> None:
            events.append(TlsRecord(ts, frame, content_type, version, length, encrypted))

        if content_type == 23:
            self.app_data_records += 1
            self._protected_seen = True
            record(True)
            self._mode = _SKIP
        elif content_type == 22:
            if self.encrypted:
                self._record_emitted = False  # clear or not is known only from the body
                self._mode = _PROBE
            else:
                record(False)
                self._mode = _HANDSHAKE
        elif content_type == 21:
            # a 2-byte alert is clear even after CCS: no cipher adds less than 2 bytes
            if self.encrypted and length != ALERT.size:
                self._protected_seen = True
                record(True)
                events.append(TlsAlert(ts, frame, None, None, True))
                self._mode = _SKIP
            else:
                record(False)
                self._mode = _COLLECT
        elif content_type == 20:
            record(False)
            self._mode = _COLLECT
        else:  # heartbeat
            if self.encrypted:
                self._protected_seen = True
            record(self.encrypted)
            self._mode = _SKIP
        if length == 0:
            self._record_done(events)

    def _emit_pending_record(self, events: list) -> None:
        """A PROBE record whose clear/encrypted verdict is still open counts as encrypted."""
        if not self._record_emitted:
            self._record_emitted = True
            self._protected_seen = True
            ts, frame = self._rec_origin
            events.append(TlsRecord(ts, frame, self._type, self.version or 0, self._rec_len, True))

    def _hello_prefix_ok(self, prefix: bytes) -> bool:
        """Cheap test of a handshake record body's first 6 bytes: could it be a fresh hello?"""
        if len(prefix) < 6 or prefix[0] not in _HELLO_TYPES[self.role]:
            return False
        length = int.from_bytes(prefix[1:4], "big")
        version = int.from_bytes(prefix[4:6], "big")
        return (_MIN_HELLO <= length and 4 + length <= self._rec_len
                and 0x0300 <= version <= 0x0303)

    def _probe_prefix(self, events: list) -> None:
        if not self._record_emitted and not self._hello_prefix_ok(bytes(self._body[:6])):
            self._emit_pending_record(events)
            self._body.clear()
            self._mode = _SKIP

    def _fresh_hello(self, body: bytes):
        """Thorough test of a whole record body in the encrypted state; the hello or None."""
        if not self._hello_prefix_ok(body[:6]):
            return None
        length = int.from_bytes(body[1:4], "big")
        parser = parse_client_hello if body[0] == 1 else parse_server_hello
        try:
            return parser(body[4:4 + length])
        except Malformed:
            return None

    def _record_done(self, events: list) -> None:
        mode = self._mode
        body = bytes(self._body)
        self._body.clear()
        self._mode = _HEADER
        ts, frame = self._rec_origin
        if mode == _PROBE and not self._record_emitted:
            if self._fresh_hello(body) is not None:
                self._record_emitted = True
                events.append(TlsRecord(ts, frame, 22, self.version or 0, self._rec_len, False))
                self.encrypted = False
                self._reasm.reset()
                self._handshake_bytes(body, events)
            else:
                self._emit_pending_record(events)
        elif mode == _COLLECT and self._type == 20:
            if body == b"\x01":
                events.append(TlsChangeCipherSpec(ts, frame))
                self.encrypted = True
            else:
                events.append(TlsWeird(ts, frame, "bad_change_cipher_spec",
                                       f"change_cipher_spec body {body[:8].hex()!r} is not 01"))
        elif mode == _COLLECT and self._type == 21:
            if not body or len(body) % ALERT.size:
                events.append(TlsWeird(ts, frame, "bad_alert",
                                       f"clear alert record of {len(body)} bytes"))
            for i in range(0, len(body) - 1, ALERT.size):
                try:
                    level, description = parse_alert(body[i:i + ALERT.size])
                except Malformed as exc:
                    events.append(TlsWeird(ts, frame, "bad_alert", str(exc)))
                    continue
                events.append(TlsAlert(ts, frame, *_alert_names(level, description), False))

    # -- handshake messages --------------------------------------------------------------------

    def _handshake_bytes(self, piece: bytes, events: list) -> None:
        first_origin = self._hs_origin if self._reasm.pending else self._rec_origin
        too_large = None
        try:
            messages = self._reasm.feed(piece)
        except HandshakeTooLarge as exc:
            messages, too_large = exc.completed, exc
        for i, (msg_type, body) in enumerate(messages):
            self._on_message(msg_type, body, first_origin if i == 0 else self._rec_origin, events)
        if too_large is not None:
            events.append(TlsWeird(*self._rec_origin, "handshake_too_large", str(too_large)))
        if self._reasm.pending:
            self._hs_origin = first_origin if not messages else self._rec_origin

    def _on_message(self, msg_type: int, body: bytes, origin: tuple, events: list) -> None:
        ts, frame = origin
        parsed = None
        name = HANDSHAKE_TYPES.get(msg_type, str(msg_type))
        if msg_type in (1, 2):
            try:
                parsed = parse_client_hello(body) if msg_type == 1 else parse_server_hello(body)
            except Malformed as exc:
                events.append(TlsWeird(ts, frame, "malformed_handshake", f"{name}: {exc}"))
            else:
                self._on_hello(msg_type, parsed, origin, events)
        elif msg_type == 11:
            try:
                parsed = [certificate_summary(der) for der in parse_certificate_list(body)]
            except Malformed as exc:
                events.append(TlsWeird(ts, frame, "malformed_handshake", f"{name}: {exc}"))
        events.append(TlsHandshakeMessage(ts, frame, msg_type, parsed, len(body)))

    def _on_hello(self, msg_type: int, hello, origin: tuple, events: list) -> None:
        role = "client" if msg_type == 1 else "server"
        if self.role is None:
            self.role = role
        if role != self.role:
            events.append(TlsWeird(*origin, "unexpected_hello",
                                   f"{HANDSHAKE_TYPES[msg_type]} in the {self.role} direction"))
            return
        if self.handshake_count == 0:
            self.handshake_count = 1
        elif self._protected_seen:
            # protected records went by since the last hello: this is a brand-new handshake
            # (TLS #2 on the raw stream), not a HelloRetryRequest's second ClientHello
            self.handshake_count += 1
            events.append(TlsNewHandshake(*origin, hello))
        self.encrypted = False
        self._protected_seen = False
        if (msg_type == 2 and not hello.is_hello_retry_request
                and (hello.selected_version == 0x0304 or hello.selected_version >> 8 == 0x7F)):
            self.encrypted = True  # TLS 1.3: everything after ServerHello is protected

    # -- resynchronisation ---------------------------------------------------------------------

    def _resync_candidate(self, buf: bytes) -> int:
        """First offset of a plausible type-22/23 header with the version seen so far, or -1."""
        if self.version is not None:
            patterns = [bytes([t]) + self.version.to_bytes(2, "big") for t in (22, 23)]
        else:
            patterns = [b"\x16\x03", b"\x17\x03"]
        best = -1
        for pattern in patterns:
            at = buf.find(pattern)
            while at != -1 and at + RECORD_HEADER.size <= len(buf):
                if plausible_record_header(buf, at):
                    if best == -1 or at < best:
                        best = at
                    break
                at = buf.find(pattern, at + 1)
        return best

    def _resync(self, data: bytes, pos: int, ts: float, frame: int, events: list):
        buf = bytes(self._sync) + data[pos:]
        at = self._resync_candidate(buf)
        if at < 0:
            keep = buf[-(RECORD_HEADER.size - 1):]
            self._skipped += len(buf) - len(keep)
            self._sync = bytearray(keep)
            return data, len(data)
        self._skipped += at
        events.append(TlsWeird(ts, frame, "resync", f"skipped {self._skipped} bytes to the next "
                                                    f"plausible record header"))
        self._sync.clear()
        self._skipped = 0
        self._unconfirmed = 2  # the candidate and the header after it
        self._mode = _HEADER
        return buf[at:], 0
