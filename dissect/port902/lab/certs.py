"""Self-signed "VMware ESX Server Default Certificate"-style host certificates and thumbprints.

Why: authd's TLS #1 presents the host certificate (ESXi ``rui.crt``); clients pin it by the
SHA-1 thumbprint from their ticket, and authd's ``200 <thumbprint>`` replies quote SHA-1 or
SHA-256 thumbprints in vSphere form (uppercase hex pairs joined by ``:``) — protocol.md §3.3, §8.

The subject follows the default ESXi certificate seen on port 902 (§8):
``C=US, ST=California, L=Palo Alto, O=VMware, Inc, OU=VMware ESX Server Default Certificate,
emailAddress=ssl-certificates@vmware.com, CN=<host name>, unstructuredName=<time>,564d77…``.

Keys are derived from a public seed (the host name by default) with a seeded prime search, so a
persona's certificate — and every thumbprint quoted in labels and READMEs — is identical on
every run. These keys protect nothing and must never be used outside the lab.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import random
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

VMWARE_INC_HEX = "564d7761726520496e632e"      # "VMware Inc." as in the ESXi default subject
_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p ** 0.5) + 1))]


def thumbprint(der: bytes, algorithm: str = "sha1") -> str:
    """vSphere thumbprint of a DER certificate: ``AA:BB:…`` (SHA-1: 59 chars, SHA-256: 95)."""
    return ":".join(f"{b:02X}" for b in hashlib.new(algorithm, der).digest())


@dataclass(frozen=True)
class HostCert:
    """A host certificate with its key, as PEM for ``ssl`` and DER for thumbprints."""

    hostname: str
    der: bytes
    cert_pem: bytes
    key_pem: bytes

    @property
    def sha1(self) -> str:
        """SHA-1 thumbprint (what ``THUMBPRINT`` replies and MKS tickets carry)."""
        return thumbprint(self.der, "sha1")

    @property
    def sha256(self) -> str:
        """SHA-256 thumbprint (what ``THUMBPRINT_SHA2`` replies carry)."""
        return thumbprint(self.der, "sha256")


def _is_probable_prime(n: int, rng: random.Random, rounds: int = 24) -> bool:
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng: random.Random, bits: int, e: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (0b11 << (bits - 2)) | 1
        if (candidate - 1) % e and _is_probable_prime(candidate, rng):
            return candidate


def seeded_rsa_key(seed: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key derived from ``seed`` (reproducible; for lab certificates only)."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    e = 65537
    p = _prime(rng, bits // 2, e)
    q = _prime(rng, bits // 2, e)
    while q == p:
        q = _prime(rng, bits // 2, e)
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, n)
    )
    return numbers.private_key()


def default_certificate(hostname: str, key: rsa.RSAPrivateKey, serial: int, not_before: datetime.datetime,
                        years: int = 10) -> HostCert:
    """The "VMware ESX Server Default Certificate"-style self-signed certificate of ``hostname``
    for ``key`` (the one builder of that subject, §8); ``host_cert`` derives key, serial and date
    from a seed, a caller that wants a fresh certificate per run passes a generated key."""
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Palo Alto"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "VMware, Inc"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "VMware ESX Server Default Certificate"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ssl-certificates@vmware.com"),
        x509.NameAttribute(NameOID.COMMON_NAME, hostname),
        x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, f"{int(not_before.timestamp())},{VMWARE_INC_HEX}"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return HostCert(
        hostname=hostname,
        der=cert.public_bytes(serialization.Encoding.DER),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()),
    )


@functools.lru_cache(maxsize=None)
def host_cert(hostname: str, seed: str | None = None, bits: int = 2048,
              not_before: datetime.datetime | None = None, years: int = 10) -> HostCert:
    """The (cached) default-style certificate of ``hostname``; same inputs, same bytes."""
    seed = seed or f"dissect902-lab:{hostname}"
    key = seeded_rsa_key(seed, bits)
    rng = random.Random(hashlib.sha256(b"cert:" + seed.encode()).digest())
    if not_before is None:
        not_before = datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
            seconds=rng.randrange(3 * 365 * 86400))
    return default_certificate(hostname, key, rng.getrandbits(63) | 1, not_before, years)
