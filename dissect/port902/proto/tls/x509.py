"""Certificates a TLS ≤ 1.2 server sends in clear (RFC 5246 §7.4.2) and vSphere thumbprints.

The summary is what an admin compares with the host's thumbprint in vCenter (protocol.md §5.3).
``cryptography`` (its x509 part costs ~40 ms to import) is loaded at the first certificate read,
not when the analysis starts.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass
from datetime import datetime

from ...errors import Malformed
from .hello import _Reader


def thumbprint(der: bytes, algorithm: str = "sha1") -> str:
    """Certificate thumbprint the way vSphere writes it: ``AB:CD:...`` (authd's THUMBPRINT reply)."""
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


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


@functools.cache
def _crypto() -> tuple:
    """(x509 module, NameOID, signature algorithm names by OID, key classes with their names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
    from cryptography.x509.oid import NameOID
    from cryptography.x509.oid import SignatureAlgorithmOID as _S

    #: Common signature algorithm OIDs by their RFC names; others are shown as dotted OIDs.
    signature_algorithms = {
        _S.RSA_WITH_MD5: "md5WithRSAEncryption", _S.RSA_WITH_SHA1: "sha1WithRSAEncryption",
        _S.RSA_WITH_SHA224: "sha224WithRSAEncryption", _S.RSA_WITH_SHA256: "sha256WithRSAEncryption",
        _S.RSA_WITH_SHA384: "sha384WithRSAEncryption", _S.RSA_WITH_SHA512: "sha512WithRSAEncryption",
        _S.RSASSA_PSS: "rsassaPss", _S.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
        _S.ECDSA_WITH_SHA224: "ecdsa-with-SHA224", _S.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
        _S.ECDSA_WITH_SHA384: "ecdsa-with-SHA384", _S.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
        _S.DSA_WITH_SHA1: "dsa-with-sha1", _S.DSA_WITH_SHA224: "dsa-with-sha224",
        _S.DSA_WITH_SHA256: "dsa-with-sha256", _S.ED25519: "ed25519", _S.ED448: "ed448",
    }
    key_types = ((rsa.RSAPublicKey, "RSA"), (ec.EllipticCurvePublicKey, "EC"),
                 (dsa.DSAPublicKey, "DSA"), (ed25519.Ed25519PublicKey, "Ed25519"),
                 (ed448.Ed448PublicKey, "Ed448"), (x25519.X25519PublicKey, "X25519"),
                 (x448.X448PublicKey, "X448"))
    return x509, NameOID, signature_algorithms, key_types


_FIXED_KEY_BITS = {"Ed25519": 256, "Ed448": 456, "X25519": 256, "X448": 448}


def _describe_key(key: object) -> tuple[str, int | None, str | None]:
    """(key type, size in bits, curve name) of a public key object."""
    for cls, name in _crypto()[3]:
        if isinstance(key, cls):
            break
    else:
        return type(key).__name__, None, None
    if name == "EC":
        curve = key.curve  # narrowed by the isinstance above
        return name, curve.key_size, curve.name
    return name, getattr(key, "key_size", _FIXED_KEY_BITS.get(name)), None


def certificate_summary(der: bytes) -> CertificateInfo:
    """Summarise one DER certificate; never raises, whatever the bytes.

    Thumbprints are always there (they are what authd and tickets pin); every other field
    is read on its own, so one odd extension or name does not hide the rest.  A server sends
    the same certificate to every client: the summary (frozen) is remembered for the last
    few hundred distinct certificates rather than parsed again per connection.
    """
    return _summary(bytes(der))


@functools.lru_cache(maxsize=512)
def _summary(der: bytes) -> CertificateInfo:
    sha1, sha256 = thumbprint(der, "sha1"), thumbprint(der, "sha256")
    x509, name_oid, signature_algorithms, _keys = _crypto()  # imported before warnings are recorded
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
            attrs = cert.subject.get_attributes_for_oid(name_oid.COMMON_NAME)
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
        read("signature_algorithm", lambda: signature_algorithms.get(
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


