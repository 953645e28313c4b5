"""One authd client connection on a real socket: banner, TLS #1, control lines, hand-off.

Why: the live lab's clients (``liveclient``) must put on the wire exactly what real clients put
there (protocol.md §3, §4.2, §5.3): the plaintext banner line, a ClientHello right after it (no
command, §3.2), authd lines inside TLS #1, and after ``200 Connect`` *either* cleartext on the
same TCP stream (NFC nbd) *or* a brand-new TLS handshake on the raw stream — never nested in
TLS #1, and without a close_notify for TLS #1 (§4.2 steps 10-11, §5.3 a). Python's
``SSLSocket`` cannot abandon a session that way, so TLS runs in ``ssl.SSLObject``s over memory
BIOs and the socket stays a plain socket: ``start_tls`` builds a new ``SSLObject`` over the
same socket, ``abandon_tls`` just forgets the old one.

TLS records are read from the socket one at a time (5-byte header, then the body), so no
cleartext byte that follows the last TLS #1 record is ever swallowed by the TLS layer.

What a ``Wire`` records is the client's own ground truth for the labels: the banner it read,
each handshake's version / cipher / SNI / certificate thumbprints, payload bytes each way,
and timed marks (``mark``) that the live harness uses to cut captures inside a session.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import struct
import time
import warnings

from .authd import line as authd_line

TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
RECORD_TYPES = (20, 21, 22, 23)


class WireError(Exception):
    """The server said or did something the client did not expect."""


def thumbprint(der: bytes, algorithm: str = "sha1") -> str:
    """vSphere form ``AA:BB:…`` of a certificate's digest."""
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def client_context(tls_max: str | None = None, tls_min: str = "1.0", ciphers: str | None = None) -> ssl.SSLContext:
    """A client context that pins by thumbprint (as VMware clients do, §3.2), not by a CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = TLS_VERSIONS[tls_min]
        if tls_max:
            ctx.maximum_version = TLS_VERSIONS[tls_max]
    if tls_min in ("1.0", "1.1"):
        ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    elif ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


class Wire:
    """A TCP connection to authd whose application layer is plain, TLS #1 or TLS #2."""

    def __init__(self, host: str, port: int, timeout: float = 20.0, on_mark=None):
        self.started = time.time()
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local, remote = self.sock.getsockname(), self.sock.getpeername()
        self.client = {"ip": local[0], "port": local[1]}
        self.server = {"ip": remote[0], "port": remote[1]}
        self.obj: ssl.SSLObject | None = None
        self._in = self._out = None
        self.plain = bytearray()          # application bytes received and not yet consumed
        self.handshakes: list[dict] = []
        self.sent = self.received = 0
        self.marks: list[dict] = []
        self.on_mark = on_mark
        self.closed_by = None
        self.mark("syn")

    # -- bookkeeping ------------------------------------------------------------------------------

    def mark(self, what: str) -> None:
        """Note that the session reached ``what`` now (harness cuts and labels' events)."""
        self.marks.append({"what": what, "ts": round(time.time(), 6)})
        if self.on_mark:
            self.on_mark(what)

    # -- raw socket -----------------------------------------------------------------------------

    def _send_raw(self, data: bytes) -> None:
        if data:
            self.sock.sendall(data)
            self.sent += len(data)

    def _recv_raw(self, n: int) -> bytes:
        """Up to ``n`` raw bytes (b"" at EOF)."""
        data = self.sock.recv(n)
        self.received += len(data)
        return data

    def _recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self._recv_raw(n - len(out))
            if not chunk:
                raise EOFError(f"connection closed by the server after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    # -- TLS ----------------------------------------------------------------------------------------

    def start_tls(self, ctx: ssl.SSLContext, sni: str | None = None, label: str = "tls1") -> dict:
        """A new TLS client handshake on the raw stream (TLS #1 after the banner, or TLS #2)."""
        if self.plain:
            raise WireError(f"{len(self.plain)} unread application bytes before {label}")
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self._in, self._out, server_side=False, server_hostname=sni)
        self.mark(f"{label}_client_hello")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._feed_record()
        self._flush()
        der = self.obj.getpeercert(binary_form=True) or b""
        info = {"label": label, "version": self.obj.version(), "cipher": self.obj.cipher()[0], "sni": sni,
                "cert_sha1": thumbprint(der) if der else None,
                "cert_sha256": thumbprint(der, "sha256") if der else None}
        self.handshakes.append(info)
        self.mark(f"{label}_done")
        return info

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self._send_raw(data)

    def _feed_record(self) -> None:
        header = self._recv_exact(5)
        if header[0] not in RECORD_TYPES or header[1] != 3:
            raise WireError(f"not a TLS record: {header.hex()}")
        self._in.write(header + self._recv_exact(struct.unpack("!H", header[3:5])[0]))

    def abandon_tls(self) -> None:
        """Leave the current TLS session without close_notify (§4.2: clients never unwrap)."""
        self.obj = self._in = self._out = None

    @property
    def tls(self) -> bool:
        return self.obj is not None

    # -- application bytes ---------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """One write: one TLS record inside TLS, one send() in clear."""
        if self.obj is None:
            self._send_raw(data)
            return
        self.obj.write(data)
        self._flush()

    def _fill(self) -> bool:
        """Read more application bytes into ``plain``; False at EOF."""
        if self.obj is None:
            data = self._recv_raw(65536)
            self.plain += data
            return bool(data)
        try:
            self._feed_record()
        except EOFError:
            return False
        while True:
            try:
                data = self.obj.read(65536)
            except ssl.SSLWantReadError:
                return True
            except ssl.SSLZeroReturnError:
                self.closed_by = "server_notify"
                return False
            if not data:
                return True
            self.plain += data

    def recv_exact(self, n: int) -> bytes:
        """Exactly ``n`` application bytes."""
        while len(self.plain) < n:
            if not self._fill():
                raise EOFError(f"connection closed after {len(self.plain)} of {n} application bytes")
        data = bytes(self.plain[:n])
        del self.plain[:n]
        return data

    def recv_some(self) -> bytes:
        """Whatever application bytes arrive next (b"" at EOF; records without application
        data, such as TLS 1.3 session tickets, are read past)."""
        while not self.plain:
            if not self._fill():
                return b""
        data = bytes(self.plain)
        self.plain.clear()
        return data

    def read_line(self) -> str:
        """One CRLF-terminated line (without CRLF); in clear it reads byte by byte, so nothing
        after the line is consumed (the next bytes may be a TLS handshake)."""
        while b"\r\n" not in self.plain:
            if self.obj is None:
                data = self._recv_raw(1)
                if not data:
                    raise EOFError("connection closed before the end of a line")
                self.plain += data
            elif not self._fill():
                raise EOFError("connection closed before the end of a line")
        end = self.plain.index(b"\r\n")
        text = bytes(self.plain[:end]).decode("latin-1")
        del self.plain[:end + 2]
        return text

    # -- authd ------------------------------------------------------------------------------------

    def send_line(self, text: str) -> None:
        self.send(authd_line(text))

    def command(self, text: str, expect: str | tuple[str, ...] | None = None) -> str:
        """Send one line and read the reply; ``expect`` codes raise ``WireError`` otherwise."""
        self.send_line(text)
        reply = self.read_line()
        if expect is not None and reply[:3] not in ((expect,) if isinstance(expect, str) else expect):
            raise WireError(f"{text.split()[0]}: unexpected reply {reply!r}")
        return reply

    def banner(self) -> str:
        """The greeting line the server sends on accept (§2)."""
        text = self.read_line()
        self.mark("banner")
        if not text.startswith("220 "):
            raise WireError(f"not an authd banner: {text!r}")
        self.banner_text = text
        return text

    def greet(self, ctx: ssl.SSLContext, sni: str | None = None) -> str:
        """Banner, then TLS #1 when it says ``SSL`` (§3.2, the test real clients make)."""
        text = self.banner()
        if "SSL" in text:
            self.start_tls(ctx, sni, "tls1")
        return text

    # -- endings ---------------------------------------------------------------------------------

    def close(self, how: str = "fin") -> str:
        """``notify`` (close_notify then FIN), ``fin``, or ``rst`` (SO_LINGER 0); returns the outcome."""
        outcome = "closed"
        try:
            if how == "notify" and self.obj is not None:
                try:
                    self.obj.unwrap()
                except (ssl.SSLWantReadError, ssl.SSLError):
                    pass
                self._flush()
            if how == "rst":
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                outcome = "reset"
            else:
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.settimeout(3.0)
                try:
                    while self.sock.recv(65536):
                        pass
                except OSError:
                    pass
        except OSError:
            outcome = "reset"
        finally:
            self.sock.close()
        self.mark("fin" if outcome == "closed" else "rst")
        return outcome

    def facts(self) -> dict:
        """What this connection did, in the labels' terms (merged into the client's result)."""
        first = self.handshakes[0] if self.handshakes else {}
        second = self.handshakes[1] if len(self.handshakes) > 1 else {}
        return {"client": self.client, "server": self.server, "start_ts": round(self.started, 6),
                "end_ts": round(time.time(), 6), "banner": getattr(self, "banner_text", None),
                "tls_handshakes": len(self.handshakes), "tls_version": first.get("version"),
                "tls_cipher": first.get("cipher"), "tls2_version": second.get("version"),
                "tls2_cipher": second.get("cipher"), "sni": first.get("sni"),
                "cert_sha1": first.get("cert_sha1"), "cert_sha256": first.get("cert_sha256"),
                "payload_bytes": {"c2s": self.sent, "s2c": self.received}, "marks": self.marks}
