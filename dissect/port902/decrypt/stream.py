"""Decrypt the TLS records of one TCP connection, every handshake on it independently.

A port-902 stream carries TLS #1 after the banner and, after ``200 Connect``, a brand-new
TLS #2 on the raw stream (protocol.md §4.2).  Each handshake is matched to its keys by its
own ClientHello random.  Per direction the state machine follows RFC 5246 §7.1 (TLS 1.0-1.2:
records are protected after that direction's ChangeCipherSpec, sequence numbers restart
there) and RFC 8446 §2 / §4.4 / §4.6.3 (TLS 1.3: everything after ServerHello is protected,
first with the handshake traffic secret, after the sender's Finished with
``*_TRAFFIC_SECRET_0``, after each KeyUpdate with the next secret).  The encrypted TLS 1.3
handshake is read too, so the server's Certificate is known.

Failures are events, never exceptions: a record that does not authenticate is reported once
(``on_weird``) and that direction of that handshake is not decrypted further; the other
direction and later handshakes go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import Malformed
from ..proto import tls as tlsmod
from .keylog import KeyLog
from .prf import key_block
from .record import AeadTls13, DecryptError, RecordCipher, tls12_ciphers
from .schedule import next_secret
from .suites import Suite, suite

EXT_ENCRYPT_THEN_MAC = 22
MAX_CLEAR_HANDSHAKE = 1 << 18
MAX_RECORD = (1 << 14) + 2048 + 256
_HELLO_LEN_MIN = 38


@dataclass
class HandshakeKeys:
    """What one handshake on the stream needs for decryption, and what came of it."""

    index: int
    client_random: bytes | None = None
    server_random: bytes | None = None
    version: int | None = None
    suite: Suite | None = None
    suite_code: int | None = None
    etm: bool = False
    keys: str = "no_hello"  # no_hello | missing | found | unsupported
    ciphers: dict = field(default_factory=dict)  # from_client -> RecordCipher
    app_secrets: dict = field(default_factory=dict)  # TLS 1.3 from_client -> TRAFFIC_SECRET_0
    records: list = field(default_factory=lambda: [0, 0])  # decrypted records c2s, s2c
    plaintext: list = field(default_factory=lambda: [0, 0])  # application data bytes c2s, s2c
    failed: list = field(default_factory=lambda: [False, False])
    key_updates: list = field(default_factory=lambda: [0, 0])

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "client_random": self.client_random.hex() if self.client_random else None,
            "version": tlsmod.version_name(self.version) if self.version else None,
            "cipher": self.suite.name if self.suite else (tlsmod.cipher_name(self.suite_code)
                                                          if self.suite_code is not None else None),
            "encrypt_then_mac": self.etm,
            "keys": self.keys,
            "records": {"client_to_server": self.records[0], "server_to_client": self.records[1]},
            "plaintext_bytes": {"client_to_server": self.plaintext[0], "server_to_client": self.plaintext[1]},
            "failed": {"client_to_server": self.failed[0], "server_to_client": self.failed[1]},
            "key_updates": {"client_to_server": self.key_updates[0], "server_to_client": self.key_updates[1]},
        }


class _Direction:
    __slots__ = ("from_client", "buf", "hs", "encrypted", "app_seen", "lost", "clear_hs", "inner_hs",
                 "cipher", "ct_bytes")

    def __init__(self, from_client: bool) -> None:
        self.from_client = from_client
        self.buf = bytearray()
        self.hs = 0
        self.encrypted = False
        self.app_seen = False
        self.lost = False
        self.clear_hs = bytearray()
        self.inner_hs = bytearray()
        self.cipher: RecordCipher | None = None
        self.ct_bytes = 0


def _hello_like(body: bytes, from_client: bool) -> bool:
    if len(body) < 6 or body[0] != (1 if from_client else 2):
        return False
    length = int.from_bytes(body[1:4], "big")
    return _HELLO_LEN_MIN <= length <= len(body) - 4 and 0x0300 <= int.from_bytes(body[4:6], "big") <= 0x0303


def _messages(buf: bytearray):
    """Complete handshake messages (type, body) taken off the front of ``buf``."""
    out = []
    while len(buf) >= 4:
        n = int.from_bytes(buf[1:4], "big")
        if len(buf) < 4 + n:
            break
        out.append((buf[0], bytes(buf[4:4 + n])))
        del buf[:4 + n]
    return out


def tls13_certificates(body: bytes) -> list[bytes]:
    """DER certificates of a TLS 1.3 Certificate message (RFC 8446 §4.4.2): a request
    context, then entries of uint24 cert_data + uint16 extensions."""
    if not body:
        return []
    pos = 1 + body[0]
    total = int.from_bytes(body[pos:pos + 3], "big")
    pos += 3
    end = min(len(body), pos + total)
    out = []
    while pos + 3 <= end:
        n = int.from_bytes(body[pos:pos + 3], "big")
        pos += 3
        out.append(body[pos:pos + n])
        pos += n
        if pos + 2 > end:
            break
        pos += 2 + int.from_bytes(body[pos:pos + 2], "big")
    return out


class ConnectionDecryptor:
    """Feed it the TLS bytes of both directions (``data``/``gap``) in capture order.

    Callbacks: ``on_plain(handshake, from_client, content_type, data, ts, frame)`` for every
    decrypted application-data (23) and alert (21) record; ``on_certificates(handshake, ders,
    ts, frame)`` for a certificate list read from an encrypted TLS 1.3 handshake;
    ``on_weird(ts, frame, kind, detail)``."""

    def __init__(self, keylog: KeyLog, on_plain: Callable, on_weird: Callable,
                 on_certificates: Callable | None = None) -> None:
        self.keylog = keylog
        self.on_plain = on_plain
        self.on_weird = on_weird
        self.on_certificates = on_certificates
        self.dirs = {True: _Direction(True), False: _Direction(False)}
        self.handshakes: list[HandshakeKeys] = []
        self.ciphertext_bytes = 0

    # -- input -------------------------------------------------------------------------------

    def data(self, from_client: bool, data: bytes, ts: float, frame: int) -> None:
        d = self.dirs[from_client]
        if d.lost or not data:
            return
        buf = d.buf
        buf += data
        pos, n = 0, len(buf)
        while n - pos >= 5:
            ct = buf[pos]
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            if ct not in (20, 21, 22, 23, 24) or buf[pos + 1] != 3 or length > MAX_RECORD:
                d.lost = True  # not where a record starts (a stream picked up mid-way): stop here
                buf.clear()
                return
            if n - pos < 5 + length:
                break
            version = (buf[pos + 1] << 8) | buf[pos + 2]
            with memoryview(buf) as view:  # one copy of the body, not two
                body = view[pos + 5:pos + 5 + length].tobytes()
            pos += 5 + length
            self._record(d, ct, version, body, ts, frame)
            if d.lost:
                buf.clear()
                return
        if pos:
            del buf[:pos]

    def gap(self, from_client: bool, nbytes: int, ts: float, frame: int) -> None:
        d = self.dirs[from_client]
        if d.lost or nbytes <= 0:
            return
        d.lost = True
        d.buf.clear()
        if d.hs and self.handshakes[d.hs - 1].keys == "found":
            who = "client" if from_client else "server"
            self.on_weird(ts, frame, "decrypt_gap", f"{nbytes} {who} bytes missing from the capture in TLS #{d.hs}: "
                                                   f"the rest of the {who} direction is not decrypted")

    # -- records ---------------------------------------------------------------------------

    def _hs(self, index: int) -> HandshakeKeys:
        while len(self.handshakes) < index:
            self.handshakes.append(HandshakeKeys(len(self.handshakes) + 1))
        return self.handshakes[index - 1]

    def _record(self, d: _Direction, ct: int, version: int, body: bytes, ts: float, frame: int) -> None:
        if ct == 20:
            if d.hs and not d.encrypted:
                hk = self.handshakes[d.hs - 1]
                if hk.version is not None and hk.version < 0x0304:  # TLS 1.3 sends a dummy CCS
                    d.encrypted = True
                    d.cipher = hk.ciphers.get(d.from_client)
            return
        if not d.encrypted or (ct == 22 and _hello_like(body, d.from_client)
                               and (d.app_seen or d.cipher is None or d.cipher.tls13)):
            if ct == 22:
                self._clear_handshake(d, body, ts, frame)
            return
        d.ct_bytes += len(body)
        self.ciphertext_bytes += len(body)
        hk = self.handshakes[d.hs - 1]
        cipher = d.cipher
        i = 0 if d.from_client else 1
        if cipher is None or hk.failed[i]:
            if ct == 23:
                d.app_seen = True
            return
        try:
            inner_type, plain = cipher.decrypt(ct, version, body)
        except DecryptError as exc:
            if cipher.tls13 and cipher.skip_handshake and hk.records[i] == 0:
                return  # only the application secret was logged: the handshake records stay sealed
            if ct == 22 and _hello_like(body, d.from_client):
                self._clear_handshake(d, body, ts, frame)
                return
            hk.failed[i] = True
            who = "client" if d.from_client else "server"
            self.on_weird(ts, frame, "decrypt_failed",
                          f"TLS #{hk.index} {who} record {cipher.seq + 1} ({len(body)} bytes) did not decrypt: "
                          f"{exc} (wrong key for client random {hk.client_random.hex()[:16]}…?); "
                          f"the rest of this direction is left encrypted")
            return
        hk.records[i] += 1
        if inner_type == 23:
            d.app_seen = True
            hk.plaintext[i] += len(plain)
            self.on_plain(hk.index, d.from_client, 23, plain, ts, frame)
        elif inner_type == 22:
            self._inner_handshake(d, hk, plain, ts, frame)
        elif inner_type == 21:
            self.on_plain(hk.index, d.from_client, 21, plain, ts, frame)

    def _inner_handshake(self, d: _Direction, hk: HandshakeKeys, plain: bytes, ts: float, frame: int) -> None:
        d.inner_hs += plain
        if len(d.inner_hs) > MAX_CLEAR_HANDSHAKE:
            d.inner_hs.clear()
            return
        for msg_type, body in _messages(d.inner_hs):
            if not d.cipher.tls13:
                continue
            i = 0 if d.from_client else 1
            if msg_type == 11 and not d.from_client and self.on_certificates is not None:
                self.on_certificates(hk.index, tls13_certificates(body), ts, frame)
            elif msg_type == 20 and d.from_client in hk.app_secrets and d.cipher.secret != hk.app_secrets[d.from_client]:
                d.cipher.rekey(hk.app_secrets[d.from_client])  # the sender's Finished ends its handshake
            elif msg_type == 24:  # KeyUpdate: this sender's next records use the next secret
                d.cipher.rekey(next_secret(hk.suite, d.cipher.secret))
                hk.key_updates[i] += 1

    def _clear_handshake(self, d: _Direction, body: bytes, ts: float, frame: int) -> None:
        if _hello_like(body, d.from_client) and (d.hs == 0 or d.app_seen or d.encrypted):
            d.hs += 1
            d.encrypted = False
            d.app_seen = False
            d.cipher = None
            d.clear_hs.clear()
            d.inner_hs.clear()
        if d.hs == 0:
            return
        d.clear_hs += body
        if len(d.clear_hs) > MAX_CLEAR_HANDSHAKE:
            d.clear_hs.clear()
            return
        for msg_type, mbody in _messages(d.clear_hs):
            try:
                if msg_type == 1 and d.from_client:
                    ch = tlsmod.parse_client_hello(mbody)
                    self._hs(d.hs).client_random = ch.random
                elif msg_type == 2 and not d.from_client:
                    self._server_hello(d, tlsmod.parse_server_hello(mbody), ts, frame)
            except (Malformed, ValueError, IndexError):
                continue

    def _server_hello(self, d: _Direction, sh, ts: float, frame: int) -> None:
        hk = self._hs(d.hs)
        if sh.is_hello_retry_request:
            return
        hk.server_random = sh.random
        hk.version = sh.selected_version
        hk.suite_code = sh.cipher_suite
        hk.etm = any(t == EXT_ENCRYPT_THEN_MAC for t, _ in sh.extensions)
        client = self.dirs[True]
        if client.hs != hk.index or hk.client_random is None:
            hk.keys = "no_hello"
            return
        s = suite(sh.cipher_suite)
        tls13 = sh.selected_version == 0x0304
        if s is None or s.tls13 != tls13:
            hk.keys = "unsupported"
            entry = self.keylog.get(hk.client_random)
            if entry:
                self.on_weird(ts, frame, "decrypt_unsupported",
                              f"TLS #{hk.index}: keys logged, but {tlsmod.cipher_name(sh.cipher_suite)} "
                              f"({tlsmod.version_name(sh.selected_version)}) is not a suite dissect902 decrypts")
            return
        hk.suite = s
        if tls13:
            self._arm13(hk, s, d, client)
        else:
            master = self.keylog.master_secret(hk.client_random)
            if master is None:
                hk.keys = "missing"
                return
            kb = key_block(sh.selected_version, s, master, hk.client_random, hk.server_random)
            c, srv = tls12_ciphers(s, sh.selected_version, kb, hk.etm)
            hk.ciphers = {True: c, False: srv}
            hk.keys = "found"

    def _arm13(self, hk: HandshakeKeys, s: Suite, server: _Direction, client: _Direction) -> None:
        get = self.keylog.tls13_secret
        cr = hk.client_random
        hs_secrets = {True: get(cr, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"), False: get(cr, "SERVER_HANDSHAKE_TRAFFIC_SECRET")}
        app = {True: get(cr, "CLIENT_TRAFFIC_SECRET_0"), False: get(cr, "SERVER_TRAFFIC_SECRET_0")}
        hk.app_secrets = {k: v for k, v in app.items() if v is not None}
        ciphers = {}
        for side in (True, False):
            secret = hs_secrets[side] or app[side]
            if secret is not None:
                ciphers[side] = AeadTls13(s, secret)
        hk.ciphers = ciphers
        hk.keys = "found" if ciphers else "missing"
        for side, dd in ((False, server), (True, client)):  # everything after ServerHello is protected
            dd.encrypted = True
            dd.cipher = ciphers.get(side)
            if dd.cipher is not None and hs_secrets[side] is None:
                dd.cipher.skip_handshake = True

    def close(self) -> None:
        """The connection ended: drop buffers and record ciphers (the summary stays)."""
        for d in self.dirs.values():
            d.lost = True
            d.buf = bytearray()
            d.clear_hs = bytearray()
            d.inner_hs = bytearray()
            d.cipher = None
        for hk in self.handshakes:
            hk.ciphers = {}
            hk.app_secrets = {}

    # -- summary ---------------------------------------------------------------------------

    def summary(self) -> list[dict]:
        return [hk.to_dict() for hk in self.handshakes]
