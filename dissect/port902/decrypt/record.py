"""Record protection: decrypt one TLS record with the keys of its direction.

* TLS 1.2 AES-GCM — RFC 5288 §3: nonce = 4-byte salt from the key block + the record's
  8-byte explicit nonce; additional data = seq_num + type + version + plaintext length
  (RFC 5246 §6.2.3.3).
* TLS 1.2 ChaCha20-Poly1305 — RFC 7905 §2: nonce = IV XOR the padded sequence number, no
  explicit nonce; same additional data.
* AES-CBC with HMAC — RFC 5246 §6.2.3.2 (MAC-then-encrypt; explicit IV from TLS 1.1, RFC
  4346; TLS 1.0 chains the IV across records, RFC 2246 §6.2.3.2) and RFC 7366 §3
  (encrypt-then-MAC: the MAC covers the IV and ciphertext and is checked first).
* TLS 1.3 AEAD — RFC 8446 §5.2-§5.4: nonce = IV XOR sequence number, additional data = the
  record header, the real content type is the last non-zero byte of the plaintext.

A failing tag, MAC or padding raises :class:`DecryptError`; callers make it a weird row.
"""

from __future__ import annotations

import hmac as _hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .prf import _HASHES
from .schedule import traffic_keys
from .suites import Suite


class DecryptError(Exception):
    """The record did not authenticate (wrong key, or damaged bytes)."""


def _aead(cipher: str, key: bytes):
    return AESGCM(key) if cipher == "gcm" else ChaCha20Poly1305(key)


def _xor_nonce(iv: bytes, seq: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ seq).to_bytes(len(iv), "big")


class RecordCipher:
    """Decrypts the records of one direction in order; ``seq`` counts them (RFC 5246 §6.1)."""

    tls13 = False

    def __init__(self) -> None:
        self.seq = 0

    def decrypt(self, content_type: int, version: int, body: bytes) -> tuple[int, bytes]:
        """(content type, plaintext) of the next record; raises DecryptError."""
        out = self._decrypt(content_type, version, body)
        self.seq += 1
        return out

    def _decrypt(self, content_type: int, version: int, body: bytes) -> tuple[int, bytes]:  # pragma: no cover
        raise NotImplementedError


class AeadTls12(RecordCipher):
    def __init__(self, s: Suite, key: bytes, iv: bytes) -> None:
        super().__init__()
        self.aead = _aead(s.cipher, key)
        self.iv = iv
        self.explicit = s.cipher == "gcm"

    def _decrypt(self, content_type, version, body):
        if self.explicit:
            if len(body) < 24:
                raise DecryptError(f"GCM record of {len(body)} bytes is shorter than nonce + tag")
            view = memoryview(body)
            nonce, ct = self.iv + view[:8].tobytes(), view[8:]
        else:
            if len(body) < 16:
                raise DecryptError(f"ChaCha20-Poly1305 record of {len(body)} bytes is shorter than its tag")
            nonce, ct = _xor_nonce(self.iv, self.seq), body
        aad = self.seq.to_bytes(8, "big") + bytes([content_type]) + version.to_bytes(2, "big") \
            + (len(ct) - 16).to_bytes(2, "big")
        try:
            return content_type, self.aead.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise DecryptError("authentication tag does not match") from None


class CbcHmac(RecordCipher):
    """One CBC decryptor for the whole direction: CBC chains each block to the ciphertext block
    before it, so feeding the records back to back decrypts TLS 1.0's chained IV as the protocol
    does, and with an explicit IV (TLS 1.1+) the IV block's own output is simply dropped -- no
    cipher context per record.  The HMAC keyed once is copied per record (RFC 2104 state)."""

    def __init__(self, s: Suite, key: bytes, mac_key: bytes, iv: bytes, version: int, etm: bool) -> None:
        super().__init__()
        self.dec = Cipher(algorithms.AES(key), modes.CBC(iv or bytes(16))).decryptor()  # 1.1+: no key-block IV
        self.mac_len = s.mac_len
        self.mac_base = hmac.HMAC(mac_key, _HASHES[s.mac]())
        self.explicit = version >= 0x0302
        self.etm = etm

    def _mac(self, content_type: int, version: int, data) -> bytes:
        h = self.mac_base.copy()
        h.update(self.seq.to_bytes(8, "big") + bytes((content_type, version >> 8, version & 0xFF))
                 + len(data).to_bytes(2, "big"))
        h.update(data)
        return h.finalize()

    def _cbc(self, body) -> memoryview:
        """The record's plaintext, padding removed (a view of one fresh bytes object)."""
        skip = 16 if self.explicit else 0
        if len(body) <= skip or len(body) % 16:
            raise DecryptError(f"CBC ciphertext of {len(body) - skip} bytes is not a whole number of blocks")
        pt = memoryview(self.dec.update(body))[skip:]
        pad = pt[-1]
        if pad + 1 > len(pt) or pt[-pad - 1:].tobytes() != bytes((pad,)) * (pad + 1):
            raise DecryptError("CBC padding is wrong")
        return pt[:len(pt) - pad - 1]

    def _decrypt(self, content_type, version, body):
        mac_len = self.mac_len
        if self.etm:
            if len(body) < mac_len + 16:
                raise DecryptError(f"record of {len(body)} bytes is too short for encrypt-then-MAC")
            view = memoryview(body)
            data, tag = view[:len(view) - mac_len], view[len(view) - mac_len:]
            if not _hmac.compare_digest(tag, self._mac(content_type, version, data)):
                raise DecryptError("record MAC does not match (encrypt-then-MAC)")
            return content_type, self._cbc(data).tobytes()
        pt = self._cbc(body)
        if len(pt) < mac_len:
            raise DecryptError("CBC record too short for its MAC")
        data, tag = pt[:len(pt) - mac_len], pt[len(pt) - mac_len:]
        if not _hmac.compare_digest(tag, self._mac(content_type, version, data)):
            raise DecryptError("record MAC does not match")
        return content_type, data.tobytes()


class AeadTls13(RecordCipher):
    """One traffic secret's records; :meth:`rekey` moves to a new secret (handshake ->
    application, or a KeyUpdate) and restarts the sequence number (RFC 8446 §5.3)."""

    tls13 = True
    skip_handshake = False  # set when only *_TRAFFIC_SECRET_0 was logged

    def __init__(self, s: Suite, secret: bytes) -> None:
        super().__init__()
        self.suite = s
        self.rekey(secret)

    def rekey(self, secret: bytes) -> None:
        self.secret = secret
        key, self.iv = traffic_keys(self.suite, secret)
        self.aead = _aead(self.suite.cipher, key)
        self.seq = 0

    def _decrypt(self, content_type, version, body):
        if len(body) < 17:
            raise DecryptError(f"TLS 1.3 record of {len(body)} bytes is shorter than tag + content type")
        aad = bytes([content_type]) + version.to_bytes(2, "big") + len(body).to_bytes(2, "big")
        try:
            pt = self.aead.decrypt(_xor_nonce(self.iv, self.seq), body, aad)
        except InvalidTag:
            raise DecryptError("authentication tag does not match") from None
        end = len(pt.rstrip(b"\x00"))
        if end == 0:
            raise DecryptError("TLS 1.3 plaintext without a content type")
        return pt[end - 1], pt[:end - 1]


def tls12_ciphers(s: Suite, version: int, kb, etm: bool) -> tuple[RecordCipher, RecordCipher]:
    """(client write, server write) record ciphers from a TLS 1.0-1.2 key block."""
    if s.cipher == "cbc":
        return (CbcHmac(s, kb.client_key, kb.client_mac, kb.client_iv, version, etm),
                CbcHmac(s, kb.server_key, kb.server_mac, kb.server_iv, version, etm))
    return AeadTls12(s, kb.client_key, kb.client_iv), AeadTls12(s, kb.server_key, kb.server_iv)
