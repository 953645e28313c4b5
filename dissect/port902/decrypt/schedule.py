"""TLS 1.3 traffic keys from the logged traffic secrets.

RFC 8446 §7.1 (HKDF-Expand-Label with the "tls13 " prefix), §7.2 (key update: the next
application traffic secret is HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)),
§7.3 (write key and IV from a traffic secret: labels "key" and "iv").  RFC 5869 HKDF-Expand
via the ``cryptography`` package.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .suites import Suite

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}
HASH_LEN = {"sha256": 32, "sha384": 48}


def hkdf_expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) of RFC 8446 §7.1."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(_HASHES[hash_name](), length, info).derive(secret)


def traffic_keys(s: Suite, secret: bytes) -> tuple[bytes, bytes]:
    """(write key, write IV) for one traffic secret (RFC 8446 §7.3)."""
    return (hkdf_expand_label(s.prf, secret, b"key", b"", s.key_len),
            hkdf_expand_label(s.prf, secret, b"iv", b"", 12))


def next_secret(s: Suite, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 (RFC 8446 §7.2)."""
    return hkdf_expand_label(s.prf, secret, b"traffic upd", b"", HASH_LEN[s.prf])
