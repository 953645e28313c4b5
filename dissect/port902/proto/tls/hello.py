"""ClientHello and ServerHello (RFC 8446 §4.1.2–§4.1.3, RFC 5246 §7.4.1) and their fingerprints.

JA3 / JA3S (Salesforce) and JA4 (FoxIO, ``technical_details/JA4.md``) are computed from the
parsed fields, GREASE removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ...errors import Malformed
from .registry import (
    _EXT_ALPN,
    _EXT_EC_POINT_FORMATS,
    _EXT_SERVER_NAME,
    _EXT_SIGNATURE_ALGORITHMS,
    _EXT_SUPPORTED_GROUPS,
    _EXT_SUPPORTED_VERSIONS,
    _JA4_VERSIONS,
    HELLO_RETRY_REQUEST_RANDOM,
    cipher_name,
    is_grease,
)

# ---------------------------------------------------------------------------------------------
# Hello messages
# ---------------------------------------------------------------------------------------------

class _Reader:
    """Cursor over one complete message; any overrun is Malformed, since no more bytes can come."""

    __slots__ = ("buf", "pos", "what")

    def __init__(self, buf: bytes, what: str) -> None:
        self.buf = bytes(buf)
        self.pos = 0
        self.what = what

    @property
    def left(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int, name: str) -> bytes:
        if n > self.left:
            raise Malformed(f"{self.what}: {name} needs {n} bytes, {self.left} left")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, name: str) -> int:
        return int.from_bytes(self.take(size, name), "big")

    def vector(self, length_size: int, name: str) -> bytes:
        return self.take(self.uint(length_size, f"{name} length"), name)

    def finish(self) -> None:
        if self.left:
            raise Malformed(f"{self.what}: {self.left} trailing bytes")


def _u16_list(data: bytes, what: str) -> list[int]:
    if len(data) % 2:
        raise Malformed(f"{what}: odd length {len(data)} for a list of uint16")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def _extensions(r: _Reader) -> list[tuple[int, bytes]]:
    """Extension block: absent (SSL 3.0 style) or a uint16-length list of (type, data)."""
    if not r.left:
        return []
    block = _Reader(r.vector(2, "extensions"), r.what)
    r.finish()
    out = []
    while block.left:
        ext_type = block.uint(2, "extension type")
        out.append((ext_type, block.vector(2, f"extension {ext_type} data")))
    return out


def _parse_sni(data: bytes) -> str | None:
    r = _Reader(data, "server_name")
    names = _Reader(r.vector(2, "server_name_list"), "server_name")
    r.finish()
    host = None
    while names.left:
        name_type = names.uint(1, "name_type")
        name = names.vector(2, "host_name")
        if name_type == 0 and host is None:
            host = name.decode("latin-1")
    return host


def _parse_alpn(data: bytes) -> list[bytes]:
    r = _Reader(data, "application_layer_protocol_negotiation")
    names = _Reader(r.vector(2, "protocol_name_list"), r.what)
    r.finish()
    out = []
    while names.left:
        out.append(names.vector(1, "protocol_name"))
    return out


def _parse_u8_vector_u16(data: bytes, what: str) -> list[int]:
    r = _Reader(data, what)
    values = _u16_list(r.vector(1, what), what)
    r.finish()
    return values


def _parse_u16_vector_u16(data: bytes, what: str) -> list[int]:
    r = _Reader(data, what)
    values = _u16_list(r.vector(2, what), what)
    r.finish()
    return values


def _parse_u8_vector_u8(data: bytes, what: str) -> list[int]:
    r = _Reader(data, what)
    values = list(r.vector(1, what))
    r.finish()
    return values


def _first(extensions: list[tuple[int, bytes]], ext_type: int) -> bytes | None:
    for t, data in extensions:
        if t == ext_type:
            return data
    return None


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A parsed ClientHello; lists keep wire order and GREASE values (fingerprints drop them)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    compression_methods: list[int]
    extensions: list[tuple[int, bytes]]
    server_name: str | None = None
    alpn: list[str] = field(default_factory=list)  # Latin-1 decoded, so every byte survives
    supported_versions: list[int] = field(default_factory=list)
    supported_groups: list[int] = field(default_factory=list)
    ec_point_formats: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)

    @property
    def extension_types(self) -> list[int]:
        """Extension type numbers in wire order."""
        return [t for t, _ in self.extensions]

    @property
    def offered_versions(self) -> list[int]:
        """Versions the client offers: supported_versions (TLS 1.3 style) or the legacy field."""
        versions = [v for v in self.supported_versions if not is_grease(v)]
        return versions or [self.legacy_version]

    @property
    def max_version(self) -> int:
        """Highest version offered; what a server would pick if it supports everything."""
        return max(self.offered_versions)

    @property
    def ja3_string(self) -> str:
        """Salesforce JA3 input: version,ciphers,extensions,groups,point formats (GREASE removed)."""
        def dash(values: list[int]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))
        return ",".join((str(self.legacy_version), dash(self.cipher_suites),
                         dash(self.extension_types), dash(self.supported_groups),
                         dash(self.ec_point_formats)))

    @property
    def ja3(self) -> str:
        """JA3 fingerprint: MD5 of :attr:`ja3_string`, lowercase hex."""
        return hashlib.md5(self.ja3_string.encode("ascii"), usedforsecurity=False).hexdigest()

    def _ja4_parts(self) -> tuple[str, str, str, str]:
        """JA4 a-section, sorted cipher list, sorted extension list (no SNI/ALPN), sigalgs."""
        ciphers = [c for c in self.cipher_suites if not is_grease(c)]
        extensions = [t for t in self.extension_types if not is_grease(t)]
        if _first(self.extensions, _EXT_SUPPORTED_VERSIONS) is not None:
            offered = [v for v in self.supported_versions if not is_grease(v)]
            version = max(offered) if offered else self.legacy_version
        else:
            version = self.legacy_version
        alpn_raw = b""
        alpn_data = _first(self.extensions, _EXT_ALPN)
        if alpn_data is not None:
            try:
                protocols = _parse_alpn(alpn_data)
            except Malformed:
                protocols = []
            alpn_raw = protocols[0] if protocols else b""
        if not alpn_raw:
            alpn = "00"
        elif _alnum(alpn_raw[0]) and _alnum(alpn_raw[-1]):
            alpn = chr(alpn_raw[0]) + chr(alpn_raw[-1])
        else:
            hexed = alpn_raw.hex()
            alpn = hexed[0] + hexed[-1]
        sni = "d" if _EXT_SERVER_NAME in extensions else "i"
        a = (f"t{_JA4_VERSIONS.get(version, '00')}{sni}"
             f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn}")
        b = ",".join(f"{c:04x}" for c in sorted(ciphers))
        c = ",".join(f"{t:04x}" for t in sorted(extensions) if t not in (_EXT_SERVER_NAME, _EXT_ALPN))
        sigs = ",".join(f"{s:04x}" for s in self.signature_algorithms if not is_grease(s))
        return a, b, c, sigs

    @property
    def ja4(self) -> str:
        """FoxIO JA4 (TLS over TCP), e.g. ``t13d1516h2_8daaf6152771_e5627efa2ab1``."""
        a, b, c, sigs = self._ja4_parts()
        b_hash = _hash12(b) if b else "000000000000"
        c_hash = _hash12(f"{c}_{sigs}" if sigs else c) if c else "000000000000"
        return f"{a}_{b_hash}_{c_hash}"

    @property
    def ja4_r(self) -> str:
        """JA4 raw form: the sorted lists themselves instead of their hashes."""
        a, b, c, sigs = self._ja4_parts()
        return f"{a}_{b}_{c}_{sigs}" if sigs else f"{a}_{b}_{c}"


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header).

    The body is a complete message, so anything cut short is Malformed.
    """
    r = _Reader(body, "client_hello")
    legacy_version = r.uint(2, "legacy_version")
    random = r.take(32, "random")
    session_id = r.vector(1, "legacy_session_id")
    if len(session_id) > 32:
        raise Malformed(f"client_hello: session_id of {len(session_id)} bytes (max 32)")
    cipher_suites = _u16_list(r.vector(2, "cipher_suites"), "client_hello cipher_suites")
    if not cipher_suites:
        raise Malformed("client_hello: empty cipher_suites")
    compression_methods = list(r.vector(1, "legacy_compression_methods"))
    if not compression_methods:
        raise Malformed("client_hello: empty compression_methods")
    extensions = _extensions(r)
    server_name = None
    alpn: list[str] = []
    supported_versions: list[int] = []
    supported_groups: list[int] = []
    ec_point_formats: list[int] = []
    signature_algorithms: list[int] = []
    seen = set()
    for ext_type, data in extensions:
        if ext_type in seen:
            continue  # RFC 8446 §4.2 forbids duplicates; the first one counts
        seen.add(ext_type)
        if ext_type == _EXT_SERVER_NAME:
            server_name = _parse_sni(data)
        elif ext_type == _EXT_ALPN:
            alpn = [p.decode("latin-1") for p in _parse_alpn(data)]
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            supported_versions = _parse_u8_vector_u16(data, "supported_versions")
        elif ext_type == _EXT_SUPPORTED_GROUPS:
            supported_groups = _parse_u16_vector_u16(data, "supported_groups")
        elif ext_type == _EXT_EC_POINT_FORMATS:
            ec_point_formats = _parse_u8_vector_u8(data, "ec_point_formats")
        elif ext_type == _EXT_SIGNATURE_ALGORITHMS:
            signature_algorithms = _parse_u16_vector_u16(data, "signature_algorithms")
    return ClientHello(legacy_version, random, session_id, cipher_suites, compression_methods,
                       extensions, server_name, alpn, supported_versions, supported_groups,
                       ec_point_formats, signature_algorithms)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A parsed ServerHello (or TLS 1.3 HelloRetryRequest, which shares its format)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression: int
    extensions: list[tuple[int, bytes]]
    selected_version: int
    alpn: str | None = None

    @property
    def is_hello_retry_request(self) -> bool:
        """TLS 1.3 marks a HelloRetryRequest by a fixed random (RFC 8446 §4.1.3)."""
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    @property
    def cipher_name(self) -> str:
        return cipher_name(self.cipher_suite)

    @property
    def ja3s_string(self) -> str:
        """JA3S input: version,cipher,extensions (decimal)."""
        exts = "-".join(str(t) for t, _ in self.extensions)
        return f"{self.legacy_version},{self.cipher_suite},{exts}"

    @property
    def ja3s(self) -> str:
        """JA3S fingerprint: MD5 of :attr:`ja3s_string`."""
        return hashlib.md5(self.ja3s_string.encode("ascii"), usedforsecurity=False).hexdigest()


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello handshake body (after the 4-byte handshake header)."""
    r = _Reader(body, "server_hello")
    legacy_version = r.uint(2, "legacy_version")
    random = r.take(32, "random")
    session_id = r.vector(1, "legacy_session_id")
    if len(session_id) > 32:
        raise Malformed(f"server_hello: session_id of {len(session_id)} bytes (max 32)")
    cipher_suite = r.uint(2, "cipher_suite")
    compression = r.uint(1, "legacy_compression_method")
    extensions = _extensions(r)
    selected_version = legacy_version
    alpn = None
    versions = _first(extensions, _EXT_SUPPORTED_VERSIONS)
    if versions is not None:
        if len(versions) != 2:
            raise Malformed(f"server_hello: supported_versions of {len(versions)} bytes (want 2)")
        selected_version = int.from_bytes(versions, "big")
    alpn_data = _first(extensions, _EXT_ALPN)
    if alpn_data is not None:
        protocols = _parse_alpn(alpn_data)
        alpn = protocols[0].decode("latin-1") if protocols else None
    return ServerHello(legacy_version, random, session_id, cipher_suite, compression,
                       extensions, selected_version, alpn)


