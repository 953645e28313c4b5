"""A server-side byte pipe over one TCP socket that can run TLS, drop it and run TLS again.

Why: authd's TLS #1 is abandoned without close_notify after ``200 Connect …`` and the same TCP
stream continues either in clear (NFC "nbd") or with a brand-new TLS handshake on the raw stream
(MKS, NFC "nbdssl") — protocol.md §4.2 steps 10–11 and §5.3 (a). ``ssl.SSLSocket`` owns its
socket and reads ahead, so bytes that belong to whatever follows the hand-off would vanish into
it. Here the socket is read by :class:`Wire` into its own buffer and an ``ssl.SSLObject`` is fed
through a memory BIO **one complete TLS record at a time**, so at any moment every byte not yet
consumed by TLS is still in ``Wire.buf`` and can go to the next layer.

``Wire`` also counts payload bytes per direction for the server's ground-truth log.
"""

from __future__ import annotations

import socket
import ssl
import warnings

MAX_RECORD = 5 + 16384 + 2048          # header + largest TLSCiphertext fragment (RFC 5246 §6.2.3)
TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class PeerClosed(Exception):
    """The client closed (or reset) the TCP connection."""


class ProtocolViolation(Exception):
    """The client sent something this layer cannot accept (not a TLS record, oversized line …)."""


class Wire:
    """A connected socket with a receive buffer and per-direction byte counters."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.c2s = 0
        self.s2c = 0

    def recv_more(self, size: int = 65536) -> None:
        """Append at least one byte to ``buf``; raise :class:`PeerClosed` at end of stream."""
        try:
            data = self.sock.recv(size)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise PeerClosed(str(exc)) from None
        if not data:
            raise PeerClosed("end of stream")
        self.c2s += len(data)
        self.buf += data

    def need(self, n: int) -> None:
        """Receive until ``buf`` holds at least ``n`` bytes."""
        while len(self.buf) < n:
            self.recv_more()

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes from the stream."""
        self.need(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take_some(self) -> bytes:
        """Whatever is buffered, or the next chunk the socket delivers."""
        if not self.buf:
            self.recv_more()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def send(self, data: bytes) -> None:
        """Send all of ``data``; a peer that went away raises :class:`PeerClosed`."""
        if not data:
            return
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise PeerClosed(str(exc)) from None
        self.s2c += len(data)


def server_context(cert_file: str, key_file: str, tls_min: str = "1.2", tls_max: str = "1.3",
                   tickets: int = 2) -> ssl.SSLContext:
    """A server context for authd's TLS handshakes, limited to ``tls_min``..``tls_max``.

    TLS 1.0/1.1 need OpenSSL security level 0 (SHA-1 signatures), as old ESXi releases offered
    them (protocol.md §8); the level is lowered only when such a version is allowed. ``tickets``
    is how many TLS 1.3 session tickets the server sends right after each handshake.
    """
    if TLS_VERSIONS[tls_min] > TLS_VERSIONS[tls_max]:
        raise ValueError(f"--tls-min {tls_min} is above --tls-max {tls_max}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.num_tickets = tickets                      # TLS 1.3 NewSessionTickets after the handshake (OpenSSL: 2)
    with warnings.catch_warnings():               # TLS 1.0/1.1 are deprecated, and wanted when asked for
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = TLS_VERSIONS[tls_min]
        ctx.maximum_version = TLS_VERSIONS[tls_max]
        # OpenSSL's DEFAULT list (RSA key exchange and CBC suites included), not Python's narrower
        # server default: ESXi's own OpenSSL-based TLS stack is configured by profile (§8), and
        # scanners' hand-made ClientHellos offer such suites
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0" if tls_min in ("1.0", "1.1") else "DEFAULT")
    return ctx


class TlsChannel:
    """One server-side TLS session on ``wire``; consumes exactly the records it is fed."""

    def __init__(self, wire: Wire, ctx: ssl.SSLContext):
        self.wire = wire
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self.plain = bytearray()

    # -- record plumbing ---------------------------------------------------------------------

    def _flush(self) -> None:
        self.wire.send(self._out.read())

    def _feed_record(self) -> None:
        """Move exactly one complete TLS record from ``wire.buf`` into the TLS engine."""
        wire = self.wire
        wire.need(5)
        if wire.buf[0] not in (20, 21, 22, 23, 24) or wire.buf[1] != 3:
            raise ProtocolViolation(f"not a TLS record header: {bytes(wire.buf[:5]).hex()}")
        size = 5 + int.from_bytes(wire.buf[3:5], "big")
        if size > MAX_RECORD:
            raise ProtocolViolation(f"TLS record of {size} bytes")
        self._in.write(wire.take(size))

    def handshake(self) -> None:
        """Run the server handshake; ``ssl.SSLError`` if the client's hello is unacceptable."""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._feed_record()
            except ssl.SSLError:
                self._flush()                  # the alert explaining why
                raise
        self._flush()                          # Finished / TLS 1.3 session tickets

    @property
    def version(self) -> str | None:
        return self.obj.version()

    @property
    def cipher(self) -> str | None:
        info = self.obj.cipher()
        return info[0] if info else None

    # -- application data ----------------------------------------------------------------------

    def fill(self) -> None:
        """Decrypt at least one more byte into ``plain`` (:class:`PeerClosed` on close_notify / EOF)."""
        while True:
            try:
                data = self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._flush()                  # e.g. key updates
                self._feed_record()
                continue
            except ssl.SSLZeroReturnError:
                raise PeerClosed("close_notify") from None
            if not data:
                raise PeerClosed("close_notify")
            self.plain += data
            return

    def read_line(self, limit: int = 4096) -> bytes:
        """One line up to and including LF (CR LF expected); oversized lines are a violation."""
        while True:
            end = self.plain.find(b"\n")
            if end >= 0:
                out = bytes(self.plain[: end + 1])
                del self.plain[: end + 1]
                return out
            if len(self.plain) > limit:
                raise ProtocolViolation(f"line longer than {limit} bytes")
            self.fill()

    def take(self, n: int) -> bytes:
        """Exactly ``n`` plaintext bytes."""
        while len(self.plain) < n:
            self.fill()
        out = bytes(self.plain[:n])
        del self.plain[:n]
        return out

    def take_some(self) -> bytes:
        """Buffered plaintext, or the next decrypted chunk."""
        if not self.plain:
            self.fill()
        out = bytes(self.plain)
        self.plain.clear()
        return out

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.obj.write(view):]
            self._flush()


class PlainChannel:
    """The same reading interface as :class:`TlsChannel`, on the raw stream (no TLS)."""

    version = cipher = None

    def __init__(self, wire: Wire):
        self.wire = wire

    @property
    def plain(self) -> bytearray:
        return self.wire.buf

    def fill(self) -> None:
        self.wire.recv_more()

    def read_line(self, limit: int = 4096) -> bytes:
        buf = self.wire.buf
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                return self.wire.take(end + 1)
            if len(buf) > limit:
                raise ProtocolViolation(f"line longer than {limit} bytes")
            self.wire.recv_more()

    def take(self, n: int) -> bytes:
        return self.wire.take(n)

    def take_some(self) -> bytes:
        return self.wire.take_some()

    def send(self, data: bytes) -> None:
        self.wire.send(data)
