"""Real TLS between a client and a server ``ssl.SSLObject`` pumped over memory BIOs.

Why: on port 902 the dissector sees TLS record headers, a readable TLS 1.2 handshake (server
certificate in clear) and — after ``200 Connect`` — a second, brand-new handshake on the raw
stream (protocol.md §4.2, §5.3). Faking those bytes would test the parser against our own
assumptions; running OpenSSL on both ends gives exactly the bytes a real pair would exchange.

``TlsPair.handshake()`` returns the handshake flight by flight (``("C"|"S", bytes)``) so the
caller can put each flight on the wire at a realistic time; ``client_write`` / ``server_write``
return the records carrying application data. The peer always consumes what it is sent, so the
two state machines stay in step. Random values differ per run; sizes do not.
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
import warnings

from .certs import HostCert

VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
LEGACY = ("1.0", "1.1")
_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_PEM_DIR: list[str] = []


def _pem_files(cert: HostCert) -> tuple[str, str]:
    """``ssl`` loads keys from files only: write each certificate once to a private temp dir."""
    if not _PEM_DIR:
        _PEM_DIR.append(tempfile.mkdtemp(prefix="dissect902-lab-"))
        atexit.register(shutil.rmtree, _PEM_DIR[0], True)
    base = os.path.join(_PEM_DIR[0], cert.sha1.replace(":", ""))
    cert_path, key_path = base + ".crt", base + ".key"
    if not os.path.exists(cert_path):
        with open(key_path, "wb") as handle:
            handle.write(cert.key_pem)
        with open(cert_path, "wb") as handle:
            handle.write(cert.cert_pem)
    return cert_path, key_path


# "Same seed, same capture" on every Python build: what a ClientHello offers must not come from
# the interpreter's compiled-in defaults (Debian builds Python with OpenSSL's DEFAULT list, 60
# suites; python.org and pyenv builds with Python's own, 17), so every context the lab makes
# states its TLS <= 1.2 cipher list (by name, in order: explicit names keep their order in
# OpenSSL), its options and its TLS extensions explicitly.  TLS 1.3 suites and the key-exchange
# groups have no setter in Python's ssl before 3.13; they are OpenSSL's compiled-in defaults,
# the same for every interpreter linked to the same OpenSSL (what ``pinned_profile`` reports).
MODERN_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256",
    "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-SHA256", "DHE-RSA-AES128-SHA256",
))  # Python's own default list (PY_SSL_DEFAULT_CIPHER_STRING) as OpenSSL 3.0 expands it
LEGACY_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305", "DHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384", "DHE-RSA-AES256-SHA256", "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256", "DHE-RSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
    "DHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "DHE-RSA-AES128-SHA",
    "RSA-PSK-AES256-GCM-SHA384", "DHE-PSK-AES256-GCM-SHA384", "RSA-PSK-CHACHA20-POLY1305",
    "DHE-PSK-CHACHA20-POLY1305", "ECDHE-PSK-CHACHA20-POLY1305", "AES256-GCM-SHA384", "PSK-AES256-GCM-SHA384",
    "PSK-CHACHA20-POLY1305", "RSA-PSK-AES128-GCM-SHA256", "DHE-PSK-AES128-GCM-SHA256", "AES128-GCM-SHA256",
    "PSK-AES128-GCM-SHA256", "AES256-SHA256", "AES128-SHA256", "ECDHE-PSK-AES256-CBC-SHA384",
    "ECDHE-PSK-AES256-CBC-SHA", "SRP-RSA-AES-256-CBC-SHA", "SRP-AES-256-CBC-SHA", "RSA-PSK-AES256-CBC-SHA384",
    "DHE-PSK-AES256-CBC-SHA384", "RSA-PSK-AES256-CBC-SHA", "DHE-PSK-AES256-CBC-SHA", "AES256-SHA",
    "PSK-AES256-CBC-SHA384", "PSK-AES256-CBC-SHA", "ECDHE-PSK-AES128-CBC-SHA256", "ECDHE-PSK-AES128-CBC-SHA",
    "SRP-RSA-AES-128-CBC-SHA", "SRP-AES-128-CBC-SHA", "RSA-PSK-AES128-CBC-SHA256", "DHE-PSK-AES128-CBC-SHA256",
    "RSA-PSK-AES128-CBC-SHA", "DHE-PSK-AES128-CBC-SHA", "AES128-SHA", "PSK-AES128-CBC-SHA256", "PSK-AES128-CBC-SHA",
))  # OpenSSL 3.0's "DEFAULT" as TLS 1.0/1.1 peers of the era offered it
OPTIONS = (ssl.OP_ALL | ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
           | ssl.OP_SINGLE_DH_USE | ssl.OP_SINGLE_ECDH_USE | ssl.OP_ENABLE_MIDDLEBOX_COMPAT)


def cipher_string(version: str, ciphers: str | None) -> str:
    """The OpenSSL cipher string a lab context of ``version`` is given (never the build's default)."""
    if version in LEGACY:
        return (ciphers or LEGACY_CIPHERS) + ":@SECLEVEL=0"
    return ciphers or MODERN_CIPHERS


def _pin(ctx: ssl.SSLContext, version: str, ciphers: str | None, tickets: bool = True) -> None:
    with warnings.catch_warnings():            # TLS 1.0/1.1 are deprecated, and wanted here
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = VERSIONS[version]
        ctx.maximum_version = VERSIONS[version]
    ctx.options = OPTIONS | (0 if tickets else ssl.OP_NO_TICKET)   # assignment clears the build's extra bits
    ctx.set_ciphers(cipher_string(version, ciphers))
    if hasattr(ctx, "post_handshake_auth"):
        ctx.post_handshake_auth = False      # no post_handshake_auth extension in the ClientHello


def pinned_profile() -> dict:
    """What lab contexts offer on this interpreter: a fingerprint to compare across Python builds."""
    out = {"openssl": ssl.OPENSSL_VERSION}
    for version in VERSIONS:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _pin(ctx, version, None)
        out[version] = {"options": ctx.options, "ciphers": [c["name"] for c in ctx.get_ciphers()]}
    return out


def _context(side: str, version: str, ciphers: str | None, cert: HostCert | None, tickets: bool,
             alpn: tuple[str, ...], keylog: str | None) -> ssl.SSLContext:
    key = (side, version, ciphers, cert.der if cert else None, tickets, alpn)
    ctx = None if keylog else _CONTEXTS.get(key)      # a key log binds a context to one open file
    if ctx is None:
        if side == "server":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*_pem_files(cert))
            if not tickets:
                ctx.num_tickets = 0
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE      # clients pin the thumbprint instead (§3.2)
            if keylog:
                ctx.keylog_filename = keylog
        _pin(ctx, version, ciphers, tickets or side == "client")
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        if not keylog:
            _CONTEXTS[key] = ctx
    return ctx


def _pump(obj: ssl.SSLObject) -> bool:
    try:
        obj.do_handshake()
        return True
    except ssl.SSLWantReadError:
        return False


def _drain(obj: ssl.SSLObject) -> bytes:
    data = bytearray()
    while True:
        try:
            chunk = obj.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


class TlsPair:
    """A client and a server TLS endpoint talking to each other in memory.

    ``version`` is ``"1.0"``..``"1.3"`` (both ends pinned to it); ``ciphers`` is an OpenSSL
    cipher string (affects TLS ≤ 1.2 only); ``sni`` sets the ClientHello server name (none by
    default, like the Python MKS clients of §8); ``keylog`` appends NSS key-log lines so
    Wireshark can decrypt the capture.
    """

    def __init__(self, cert: HostCert, version: str = "1.2", *, ciphers: str | None = None,
                 sni: str | None = None, alpn: tuple[str, ...] = (), tickets: bool = True,
                 keylog: str | os.PathLike | None = None):
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {sorted(VERSIONS)}")
        self.cert, self.requested_version, self.sni = cert, version, sni
        keylog = os.fspath(keylog) if keylog else None
        cctx = _context("client", version, ciphers, None, tickets, tuple(alpn), keylog)
        sctx = _context("server", version, ciphers, cert, tickets, tuple(alpn), None)
        self._c_in, self._c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._s_in, self._s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = cctx.wrap_bio(self._c_in, self._c_out, server_side=False, server_hostname=sni)
        self.server = sctx.wrap_bio(self._s_in, self._s_out, server_side=True)
        self.flights: list[tuple[str, bytes]] = []

    def handshake(self) -> list[tuple[str, bytes]]:
        """Run the handshake; returns the flights in wire order as ``("C"|"S", bytes)``."""
        client_done = server_done = False
        while True:
            progressed = False
            if not client_done or self._c_in.pending:
                client_done = _pump(self.client) or client_done
                progressed |= self._move(self._c_out, self._s_in, "C")
            if not server_done or self._s_in.pending:
                server_done = _pump(self.server) or server_done
                progressed |= self._move(self._s_out, self._c_in, "S")
            if client_done and server_done and not progressed:
                break
            if not progressed and not (self._c_in.pending or self._s_in.pending):
                raise RuntimeError("TLS handshake stalled")
        _drain(self.client)
        return list(self.flights)

    def _move(self, out: ssl.MemoryBIO, peer_in: ssl.MemoryBIO, side: str) -> bool:
        data = out.read()
        if data:
            self.flights.append((side, data))
            peer_in.write(data)
        return bool(data)

    def client_write(self, data: bytes) -> bytes:
        """Encrypt ``data`` from the client; returns the TLS records put on the wire."""
        return self._write(self.client, self._c_out, self.server, self._s_in, data)

    def server_write(self, data: bytes) -> bytes:
        """Encrypt ``data`` from the server; returns the TLS records put on the wire."""
        return self._write(self.server, self._s_out, self.client, self._c_in, data)

    @staticmethod
    def _write(obj, out, peer, peer_in, data: bytes) -> bytes:
        view = memoryview(data)
        while view:
            view = view[obj.write(view):]
        wire = out.read()
        peer_in.write(wire)
        received = _drain(peer)
        if received != data:
            raise RuntimeError("TLS peer decrypted something else than was sent")
        return wire

    def client_close(self) -> bytes:
        """The client's close_notify alert."""
        return self._close(self.client, self._c_out, self._s_in)

    def server_close(self) -> bytes:
        """The server's close_notify alert."""
        return self._close(self.server, self._s_out, self._c_in)

    @staticmethod
    def _close(obj, out, peer_in) -> bytes:
        try:
            obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        wire = out.read()
        peer_in.write(wire)
        return wire

    @property
    def version(self) -> str | None:
        """Negotiated protocol, e.g. ``"TLSv1.2"``."""
        return self.client.version()

    @property
    def cipher(self) -> str | None:
        """Negotiated cipher suite name (OpenSSL spelling)."""
        info = self.client.cipher()
        return info[0] if info else None
