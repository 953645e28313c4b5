"""Cipher suites dissect902 can decrypt: bulk cipher, key and IV sizes, MAC and PRF hash.

Values from the IANA TLS cipher suite registry and the defining RFCs: RFC 5246 App. C
(AES-CBC with HMAC-SHA1/SHA256), RFC 5288 / RFC 5289 (AES-GCM, SHA-384 CBC suites),
RFC 7905 (ChaCha20-Poly1305 for TLS 1.2), RFC 8446 §B.4 (TLS 1.3 suites).  Key exchange
does not matter here: the key log gives the master secret or traffic secrets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Suite:
    code: int
    name: str
    cipher: str  # "gcm" | "chacha" | "cbc"
    key_len: int
    iv_len: int  # GCM 1.2: 4-byte salt; ChaCha / TLS 1.3: 12; CBC: 16 (block, TLS 1.0 implicit IV)
    mac: str | None  # CBC suites: "sha1" | "sha256" | "sha384"
    prf: str  # "sha256" | "sha384" (TLS 1.2 PRF and TLS 1.3 HKDF hash)
    tls13: bool = False

    @property
    def mac_len(self) -> int:
        return {"sha1": 20, "sha256": 32, "sha384": 48, None: 0}[self.mac]


def _s(code, name, cipher, key_len, mac=None, prf="sha256", tls13=False):
    iv = {"gcm": 12 if tls13 else 4, "chacha": 12, "cbc": 16}[cipher]
    return Suite(code, name, cipher, key_len, iv, mac, prf, tls13)


SUITES: dict[int, Suite] = {s.code: s for s in (
    # TLS 1.3
    _s(0x1301, "TLS_AES_128_GCM_SHA256", "gcm", 16, tls13=True),
    _s(0x1302, "TLS_AES_256_GCM_SHA384", "gcm", 32, prf="sha384", tls13=True),
    _s(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "chacha", 32, tls13=True),
    # TLS 1.2 AEAD
    _s(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "gcm", 16),
    _s(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", "gcm", 32, prf="sha384"),
    _s(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "gcm", 16),
    _s(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "gcm", 32, prf="sha384"),
    _s(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "gcm", 16),
    _s(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "gcm", 32, prf="sha384"),
    _s(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "gcm", 16),
    _s(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "gcm", 32, prf="sha384"),
    _s(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "chacha", 32),
    _s(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "chacha", 32),
    _s(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "chacha", 32),
    # CBC with HMAC
    _s(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "cbc", 16, "sha1"),
    _s(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "cbc", 32, "sha1"),
    _s(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "cbc", 16, "sha1"),
    _s(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "cbc", 32, "sha1"),
    _s(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "cbc", 16, "sha1"),
    _s(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "cbc", 32, "sha1"),
    _s(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "cbc", 16, "sha1"),
    _s(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "cbc", 32, "sha1"),
    _s(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", "cbc", 16, "sha256"),
    _s(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", "cbc", 32, "sha256"),
    _s(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", "cbc", 16, "sha256"),
    _s(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", "cbc", 32, "sha256"),
    _s(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "cbc", 16, "sha256"),
    _s(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "cbc", 32, "sha384", prf="sha384"),
    _s(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "cbc", 16, "sha256"),
    _s(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "cbc", 32, "sha384", prf="sha384"),
)}


def suite(code: int) -> Suite | None:
    return SUITES.get(code)
