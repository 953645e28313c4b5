"""TLS 1.0-1.2 key derivation: the PRF and the key block.

RFC 5246 §5 (TLS 1.2 PRF: P_<hash> with the suite's PRF hash, SHA-256 unless the suite says
SHA-384), RFC 2246 §5 / RFC 4346 §5 (TLS 1.0/1.1 PRF: P_MD5 XOR P_SHA1 over the two halves
of the secret), RFC 5246 §6.3 (key block: MAC keys, write keys, IVs, client then server).
HMAC comes from the ``cryptography`` package.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac

from .suites import Suite

_HASHES = {"md5": hashes.MD5, "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384}


def hmac_digest(name: str, key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, _HASHES[name]())
    h.update(data)
    return h.finalize()


def p_hash(name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash(secret, seed) of RFC 5246 §5, cut to ``length`` bytes."""
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac_digest(name, secret, a)
        out += hmac_digest(name, secret, a + seed)
    return bytes(out[:length])


def prf(version: int, hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The PRF of the negotiated version: TLS 1.2 uses ``hash_name``; 1.0 and 1.1 MD5 XOR SHA-1."""
    if version >= 0x0303:
        return p_hash(hash_name, secret, label + seed, length)
    half = (len(secret) + 1) // 2
    md5 = p_hash("md5", secret[:half], label + seed, length)
    sha = p_hash("sha1", secret[len(secret) - half:], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha))


@dataclass(frozen=True, slots=True)
class KeyBlock:
    client_mac: bytes
    server_mac: bytes
    client_key: bytes
    server_key: bytes
    client_iv: bytes
    server_iv: bytes


def key_block(version: int, s: Suite, master: bytes, client_random: bytes, server_random: bytes) -> KeyBlock:
    """Split the key block of RFC 5246 §6.3 (seed: server_random + client_random).
    CBC suites of TLS 1.1+ take no IV from it (explicit per-record IVs); TLS 1.0 does."""
    mac_len = s.mac_len if s.cipher == "cbc" else 0
    if s.cipher == "cbc":
        iv_len = s.iv_len if version <= 0x0301 else 0
    else:
        iv_len = s.iv_len
    need = 2 * (mac_len + s.key_len + iv_len)
    block = prf(version, s.prf, master, b"key expansion", server_random + client_random, need)
    parts, pos = [], 0
    for n in (mac_len, mac_len, s.key_len, s.key_len, iv_len, iv_len):
        parts.append(block[pos:pos + n])
        pos += n
    return KeyBlock(*parts)
