"""Tests for dissect.port902.proto.tls: byte literals, real handshakes from Python's ssl, fuzzing.

Real TLS bytes come from two ``ssl.SSLObject``s talking through memory BIOs (no sockets),
with a self-signed "ESXi default certificate" made by ``cryptography`` — the same shapes
a port-902 capture shows: TLS #1, authd lines as application data, then either a second
handshake on the raw stream or cleartext.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ssl
import struct
import tracemalloc

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissect.port902.lab.certs import default_certificate
from dissect.port902.proto import tls
from dissect.port902.errors import Malformed, NeedMoreData, Port902Error
from dissect.port902.proto.tls import (
    ClientHello, HandshakeReassembler, HandshakeTooLarge, TlsAlert, TlsChangeCipherSpec,
    TlsDirection, TlsEnd, TlsHandshakeMessage, TlsNewHandshake, TlsRecord, TlsWeird,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# byte builders
# ---------------------------------------------------------------------------------------------

def vec(n: int, data: bytes) -> bytes:
    return len(data).to_bytes(n, "big") + data


def u16s(values) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def ext(ext_type: int, data: bytes = b"") -> bytes:
    return struct.pack("!HH", ext_type, len(data)) + data


def sni(host: bytes) -> bytes:
    return ext(0, vec(2, b"\x00" + vec(2, host)))


def alpn(*protocols: bytes) -> bytes:
    return ext(16, vec(2, b"".join(vec(1, p) for p in protocols)))


def client_hello_body(version=0x0303, ciphers=(0x1301,), extensions=(), session_id=b"",
                      compression=b"\x00", random=bytes(range(32)), ext_block=True) -> bytes:
    body = (struct.pack("!H", version) + random + vec(1, session_id) + vec(2, u16s(ciphers))
            + vec(1, compression))
    if ext_block:
        body += vec(2, b"".join(extensions))
    return body


def server_hello_body(version=0x0303, cipher=0xC02F, extensions=(), session_id=b"",
                      random=bytes(32), ext_block=True) -> bytes:
    body = struct.pack("!H", version) + random + vec(1, session_id) + struct.pack("!HB", cipher, 0)
    if ext_block:
        body += vec(2, b"".join(extensions))
    return body


def handshake(msg_type: int, body: bytes) -> bytes:
    return struct.pack("!I", msg_type << 24 | len(body)) + body


def record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(body)) + body


def strip(events):
    """Events without ts/frame, for comparing runs with different chunkings."""
    return [dataclasses.replace(ev, ts=0.0, frame=0) for ev in events]


def feed_chunks(direction: TlsDirection, stream: bytes, cuts) -> list:
    """Feed *stream* cut at *cuts*; after TlsEnd, the bytes never fed are added to its remainder
    (that is what the caller hands to the next parser), so results compare with one feed."""
    points = sorted({c for c in cuts if 0 < c < len(stream)})
    events = []
    start = 0
    for i, end in enumerate(points + [len(stream)]):
        events += direction.feed(stream[start:end], float(i), i)
        start = end
        if direction.ended:
            events[-1] = dataclasses.replace(events[-1], remainder=events[-1].remainder + stream[end:])
            break
    return events


SIGALGS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
CHROME_CIPHERS = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                  0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035)


def foxio_example_hello() -> ClientHello:
    """The ClientHello behind the example in FoxIO's JA4.md (plus GREASE, which JA4 ignores)."""
    contents = {
        0x0000: sni(b"example.com")[4:], 0x0010: alpn(b"h2", b"http/1.1")[4:],
        0x000D: vec(2, u16s(SIGALGS)), 0x000A: vec(2, u16s((0x3A3A, 0x001D, 0x0017, 0x0018))),
        0x000B: vec(1, b"\x00"), 0x002B: vec(1, u16s((0x7A7A, 0x0304, 0x0303))),
    }
    order = (0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023,
             0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015)
    extensions = [ext(0x0A0A)] + [ext(t, contents.get(t, b"")) for t in order] + [ext(0x1A1A, b"\x00")]
    body = client_hello_body(ciphers=(0x2A2A,) + CHROME_CIPHERS, extensions=extensions,
                             session_id=bytes(32))
    return tls.parse_client_hello(body)


def browserleaks_hello() -> ClientHello:
    """Rebuilds a published Chrome ClientHello whose JA3 text/hash and JA4 are known."""
    contents = {
        0: sni(b"tls.browserleaks.com")[4:], 16: alpn(b"h2", b"http/1.1")[4:],
        13: vec(2, u16s(SIGALGS)), 10: vec(2, u16s((0x5A5A, 4588, 29, 23, 24))),
        11: vec(1, b"\x00"), 43: vec(1, u16s((0x8A8A, 0x0304, 0x0303))),
    }
    order = (45, 51, 16, 65037, 23, 17613, 0, 11, 10, 43, 65281, 35, 18, 5, 13, 27)
    extensions = [ext(0xDADA)] + [ext(t, contents.get(t, b"")) for t in order] + [ext(0x2A2A, b"\x00")]
    return tls.parse_client_hello(client_hello_body(ciphers=(0xBABA,) + CHROME_CIPHERS,
                                                    extensions=extensions))


# ---------------------------------------------------------------------------------------------
# real TLS from Python's ssl over memory BIOs
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def esxi_cert(tmp_path_factory):
    """A self-signed RSA-2048 certificate shaped like ESXi's default rui.crt (the lab's builder)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    host = default_certificate("localhost.localdomain", key, 0x4F5E6D, start)
    folder = tmp_path_factory.mktemp("cert")
    certfile, keyfile = folder / "rui.crt", folder / "rui.key"
    certfile.write_bytes(host.cert_pem)
    keyfile.write_bytes(host.key_pem)
    return x509.load_der_x509_certificate(host.der), str(certfile), str(keyfile)


class Pair:
    """A client and a server SSLObject joined by memory BIOs; records every byte sent."""

    def __init__(self, esxi_cert, version, sni_name="esxi01.lab", alpn_protocols=("h2", "http/1.1"),
                 server_curve=None):
        _, certfile, keyfile = esxi_cert
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(certfile, keyfile)
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        for ctx in (server_ctx, client_ctx):
            ctx.minimum_version = ctx.maximum_version = version
        if alpn_protocols:
            client_ctx.set_alpn_protocols(list(alpn_protocols))
            server_ctx.set_alpn_protocols(["http/1.1"])
        if server_curve:
            server_ctx.set_ecdh_curve(server_curve)
        self.client_ctx = client_ctx
        self.bios = [ssl.MemoryBIO() for _ in range(4)]
        c_in, c_out, s_in, s_out = self.bios
        self.client = client_ctx.wrap_bio(c_in, c_out, server_hostname=sni_name)
        self.server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        self.c2s = bytearray()
        self.s2c = bytearray()

    def _pump(self) -> None:
        c_in, c_out, s_in, s_out = self.bios
        data = c_out.read()
        self.c2s += data
        s_in.write(data)
        data = s_out.read()
        self.s2c += data
        c_in.write(data)

    def handshake(self) -> "Pair":
        done = {"client": False, "server": False}
        for _ in range(10):
            for side, obj in (("client", self.client), ("server", self.server)):
                if not done[side]:
                    try:
                        obj.do_handshake()
                        done[side] = True
                    except ssl.SSLWantReadError:
                        pass
                self._pump()
            if all(done.values()):
                break
        assert all(done.values())
        self.handshake_c2s, self.handshake_s2c = bytes(self.c2s), bytes(self.s2c)
        return self

    def talk(self, *exchanges: tuple[bytes, bytes]) -> "Pair":
        for request, reply in exchanges:
            self.client.write(request)
            self._pump()
            assert self.server.read(65536) == request
            self.server.write(reply)
            self._pump()
            assert self.client.read(65536) == reply
            self._pump()
        return self


AUTHD_MKS = ((b"USER 52cf8c64-9343-7cb7\r\n", b"331 Password required for 52cf8c64-9343-7cb7.\r\n"),
             (b"PASS 52cf8c64-9343-7cb7\r\n", b"230 User 52cf8c64-9343-7cb7 logged in.\r\n"),
             (b"CONNECT /vmfs/volumes/ds1/vm/vm.vmx mks\r\n",
              b"200 Connect /vmfs/volumes/ds1/vm/vm.vmx\r\n"))


@pytest.fixture(scope="session")
def tls12(esxi_cert):
    return Pair(esxi_cert, ssl.TLSVersion.TLSv1_2).handshake().talk(*AUTHD_MKS)


@pytest.fixture(scope="session")
def tls13(esxi_cert):
    return Pair(esxi_cert, ssl.TLSVersion.TLSv1_3).handshake().talk(*AUTHD_MKS)


@pytest.fixture(scope="session")
def two_handshakes(esxi_cert):
    """TLS #1 with the MKS dialogue, then TLS #2 started raw on the same stream (§4.2)."""
    streams = {}
    for first, second in ((ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
                          (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
                          (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)):
        one = Pair(esxi_cert, first).handshake().talk(*AUTHD_MKS)
        two = Pair(esxi_cert, second, sni_name=None, alpn_protocols=()).handshake()
        two.talk((b"Abcdefgh12345678", b"\x00\x04\x00\x03" + bytes(16)))
        streams[(first.name, second.name)] = (bytes(one.c2s + two.c2s), bytes(one.s2c + two.s2c))
    return streams


def events_of(stream: bytes, role=None, kind=None):
    events = TlsDirection(role).feed(stream, 1.0, 1)
    return [e for e in events if kind is None or isinstance(e, kind)]


def hello_of(stream: bytes, cls):
    return next(e.parsed for e in events_of(stream, kind=TlsHandshakeMessage)
                if isinstance(e.parsed, cls))


# ---------------------------------------------------------------------------------------------
# value tables and helpers
# ---------------------------------------------------------------------------------------------

def test_names_and_fallbacks():
    assert tls.CONTENT_TYPES[23] == "application_data"
    assert tls.HANDSHAKE_TYPES[11] == "certificate"
    assert tls.version_name(0x0303) == "TLS 1.2" and tls.version_name(0x0300) == "SSL 3.0"
    assert tls.version_name(0x7F1C) == "0x7F1C"
    assert tls.version_name(0x3A3A) == "GREASE"
    assert tls.cipher_name(0x1301) == "TLS_AES_128_GCM_SHA256"
    assert tls.cipher_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert tls.cipher_name(0xC0FF) == "0xC0FF"
    assert tls.cipher_name(0xFAFA) == "GREASE"
    assert len(tls.CIPHER_SUITES) >= 70
    assert {0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0x00FF, 0x5600} <= set(tls.CIPHER_SUITES)
    assert tls.EXTENSION_TYPES[43] == "supported_versions"
    assert tls.ALERT_DESCRIPTIONS[0] == "close_notify" and tls.ALERT_LEVELS[2] == "fatal"


def test_grease_values():
    grease = [0x0A0A + 0x1010 * i for i in range(16)]
    assert all(tls.is_grease(v) for v in grease)
    assert not any(tls.is_grease(v) for v in (0x0A1A, 0x1301, 0x0000, 0xFFFF, 0x0A0B))


def test_thumbprint_format():
    der = b"certificate bytes"
    sha1 = tls.thumbprint(der)
    assert len(sha1) == 59 and sha1 == ":".join(f"{b:02X}" for b in hashlib.sha1(der).digest())
    assert tls.thumbprint(der, "sha256").replace(":", "") == hashlib.sha256(der).hexdigest().upper()


# ---------------------------------------------------------------------------------------------
# record / handshake / alert headers
# ---------------------------------------------------------------------------------------------

def test_parse_record_header():
    assert tls.parse_record_header(b"\x16\x03\x01\x00\xc0") == (22, 0x0301, 192)
    assert tls.parse_record_header(b"xx\x17\x03\x03\x40\x00", offset=2) == (23, 0x0303, 16384)
    assert tls.parse_record_header(b"\x17\x03\x03\x48\x00") == (23, 0x0303, 2**14 + 2048)


@pytest.mark.parametrize("short", [b"", b"\x16", b"\x16\x03", b"\x16\x03\x01", b"\x16\x03\x01\x00"])
def test_parse_record_header_too_short(short):
    with pytest.raises(NeedMoreData):
        tls.parse_record_header(short)


@pytest.mark.parametrize("bad", [b"\x19\x03\x03\x00\x01", b"\x13\x03\x03\x00\x01",
                                 b"\x16\x02\x00\x00\x01", b"\x17\x03\x03\x48\x01",
                                 b"\x2b\x00\x00\x00\x50", b"220 V"])
def test_parse_record_header_nonsense(bad):
    with pytest.raises(Malformed):
        tls.parse_record_header(bad)
    assert not tls.plausible_record_header(bad)


def test_plausible_record_header_partial():
    assert tls.plausible_record_header(b"\x17\x03\x03\x00\x20")
    assert not tls.plausible_record_header(b"\x17\x03\x03")
    assert tls.plausible_record_header(b"\x17\x03\x03", partial=True)
    assert tls.plausible_record_header(b"", partial=True)
    assert not tls.plausible_record_header(b"\x2b", partial=True)
    assert not tls.plausible_record_header(b"\x16\x00", partial=True)
    assert not tls.plausible_record_header(b"\x17\x03\x03\x49", partial=True)
    assert tls.plausible_record_header(b"\x17\x03\x03\x48", partial=True)
    assert tls.plausible_record_header(b"..\x15\x03\x01\x00\x02", offset=2)


def test_parse_handshake_header():
    assert tls.parse_handshake_header(b"\x01\x00\x01\x02") == (1, 258)
    with pytest.raises(NeedMoreData):
        tls.parse_handshake_header(b"\x01\x00\x01")


def test_parse_alert():
    assert tls.parse_alert(b"\x02\x28") == (2, 40)
    assert tls.parse_alert(b"\x01\x00\xff") == (1, 0)
    with pytest.raises(NeedMoreData):
        tls.parse_alert(b"\x02")
    with pytest.raises(Malformed):
        tls.parse_alert(b"\x03\x28")


# ---------------------------------------------------------------------------------------------
# ClientHello, ServerHello and fingerprints
# ---------------------------------------------------------------------------------------------

def test_parse_client_hello_literal():
    body = client_hello_body(
        version=0x0303, ciphers=(0x0A0A, 0xC02F, 0x009C, 0x00FF), session_id=b"\x11" * 32,
        extensions=[sni(b"esxi01.lab"), alpn(b"h2", b"http/1.1"),
                    ext(43, vec(1, u16s((0x0A0A, 0x0304, 0x0303)))),
                    ext(10, vec(2, u16s((0x001D, 0x0017)))), ext(11, vec(1, b"\x00\x01")),
                    ext(13, vec(2, u16s((0x0804, 0x0403)))), ext(0x0017)])
    ch = tls.parse_client_hello(body)
    assert ch.legacy_version == 0x0303 and ch.random == bytes(range(32))
    assert ch.session_id == b"\x11" * 32
    assert ch.cipher_suites == [0x0A0A, 0xC02F, 0x009C, 0x00FF]
    assert ch.compression_methods == [0]
    assert ch.extension_types == [0, 16, 43, 10, 11, 13, 0x17]
    assert ch.extensions[-1] == (0x17, b"")
    assert ch.server_name == "esxi01.lab"
    assert ch.alpn == ["h2", "http/1.1"]
    assert ch.supported_versions == [0x0A0A, 0x0304, 0x0303]
    assert ch.offered_versions == [0x0304, 0x0303] and ch.max_version == 0x0304
    assert ch.supported_groups == [0x1D, 0x17] and ch.ec_point_formats == [0, 1]
    assert ch.signature_algorithms == [0x0804, 0x0403]


def test_parse_client_hello_without_extensions():
    ch = tls.parse_client_hello(client_hello_body(version=0x0300, ciphers=(0x000A, 0x002F),
                                                  ext_block=False))
    assert ch.extensions == [] and ch.server_name is None and ch.alpn == []
    assert ch.offered_versions == [0x0300] and ch.max_version == 0x0300
    assert ch.ja3_string == "768,10-47,,,"
    assert ch.ja4.startswith("ts3i0200")
    assert ch.ja4.endswith("_000000000000")


@pytest.mark.parametrize("body", [
    b"",  # too short for anything
    client_hello_body()[:20],  # random cut
    client_hello_body()[:-1],  # extension block cut
    client_hello_body() + b"\x00",  # trailing byte
    client_hello_body(session_id=bytes(33)),  # session id over 32
    client_hello_body(ciphers=()),  # no cipher suite
    client_hello_body(compression=b""),  # no compression method
    client_hello_body().replace(vec(2, u16s((0x1301,))), vec(2, b"\x13\x01\x00")),  # odd list
    client_hello_body(extensions=[ext(0, b"\x00\x05\x00")]),  # SNI list cut
    client_hello_body(extensions=[ext(16, b"\x00\x03\x05h2")]),  # ALPN entry overruns
    client_hello_body(extensions=[ext(43, b"\x03\x03\x04\x03")]),  # odd supported_versions
])
def test_parse_client_hello_nonsense(body):
    with pytest.raises(Malformed):
        tls.parse_client_hello(body)


def test_ja4_published_foxio_example():
    ch = foxio_example_hello()
    assert ch.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ch.ja4_r == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601")


def test_ja3_and_ja4_published_browser_example():
    ch = browserleaks_hello()
    assert ch.ja3_string == (
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
        "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0")
    assert ch.ja3 == "98487aa16281980e7d1120d399efb6a4"
    assert ch.ja4 == "t13d1516h2_8daaf6152771_d8a2da3f94cd"
    assert ch.ja4_r == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601")


def test_ja4_without_signature_algorithms_has_no_trailing_underscore():
    # JA4.md's example without signature algorithms (an empty signature_algorithms list)
    order = (0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023,
             0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015)
    data = {0x0000: sni(b"a.b")[4:], 0x0010: alpn(b"h2")[4:], 0x002B: vec(1, u16s((0x0304,))),
            0x000A: vec(2, u16s((29,))), 0x000B: vec(1, b"\x00"), 0x000D: vec(2, b"")}
    ch = tls.parse_client_hello(client_hello_body(
        ciphers=CHROME_CIPHERS, extensions=[ext(t, data.get(t, b"")) for t in order]))
    assert ch.signature_algorithms == []
    assert ch.ja4 == "t13d1516h2_8daaf6152771_6d807ffa2a79"
    assert ch.ja4_r.endswith("_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01")


@pytest.mark.parametrize("protocol, expected", [
    (b"h2", "h2"), (b"http/1.1", "h1"), (b"x", "xx"), (b"\xab", "ab"), (b"\xab\xcd", "ad"),
    (b"\x30\xab", "3b"), (b"\x30\x31\xab\xcd", "3d"), (b"\x30\xab\xcd\x31", "01"), (b"", "00"),
])
def test_ja4_alpn_characters(protocol, expected):
    ch = tls.parse_client_hello(client_hello_body(extensions=[alpn(protocol)]))
    assert ch.ja4[8:10] == expected


@pytest.mark.parametrize("version, sv, code", [
    (0x0303, None, "12"), (0x0302, None, "11"), (0x0301, None, "10"), (0x0300, None, "s3"),
    (0x0303, (0x0304, 0x0303), "13"), (0x0303, (0x5A5A,), "12"), (0x0305, None, "00"),
])
def test_ja4_version(version, sv, code):
    extensions = [ext(43, vec(1, u16s(sv)))] if sv else []
    ch = tls.parse_client_hello(client_hello_body(version=version, extensions=extensions))
    assert ch.ja4[1:3] == code
    assert ch.ja4[3] == "i"


def test_ja4_empty_lists_and_caps():
    ch = ClientHello(0x0303, bytes(32), b"", [], [0], [])
    assert ch.ja4 == "t12i000000_000000000000_000000000000"
    assert ch.ja4_r == "t12i000000__"
    many = ClientHello(0x0303, bytes(32), b"", list(range(1, 150)), [0],
                       [(t, b"") for t in range(100, 250)])
    assert many.ja4[4:8] == "9999"


def test_parse_server_hello_literal():
    sh = tls.parse_server_hello(server_hello_body(
        cipher=0x1302, session_id=b"\x22" * 32,
        extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d\x00\x00"), alpn(b"h2")]))
    assert sh.legacy_version == 0x0303 and sh.selected_version == 0x0304
    assert sh.cipher_suite == 0x1302 and sh.cipher_name == "TLS_AES_256_GCM_SHA384"
    assert sh.compression == 0 and sh.alpn == "h2"
    assert [t for t, _ in sh.extensions] == [43, 51, 16]
    assert not sh.is_hello_retry_request
    assert sh.ja3s_string == "771,4866,43-51-16"
    assert sh.ja3s == hashlib.md5(b"771,4866,43-51-16").hexdigest()


def test_parse_server_hello_tls12_and_hrr():
    sh = tls.parse_server_hello(server_hello_body(ext_block=False))
    assert sh.selected_version == 0x0303 and sh.extensions == [] and sh.alpn is None
    hrr = tls.parse_server_hello(server_hello_body(random=tls.HELLO_RETRY_REQUEST_RANDOM,
                                                   extensions=[ext(43, b"\x03\x04")]))
    assert hrr.is_hello_retry_request and hrr.selected_version == 0x0304


@pytest.mark.parametrize("body", [
    b"\x03\x03", server_hello_body()[:-1], server_hello_body() + b"\x00",
    server_hello_body(session_id=bytes(40)), server_hello_body(extensions=[ext(43, b"\x03")]),
    server_hello_body(extensions=[ext(16, b"\x00\x04\x05h2")]),
])
def test_parse_server_hello_nonsense(body):
    with pytest.raises(Malformed):
        tls.parse_server_hello(body)


# ---------------------------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------------------------

def test_parse_certificate_list_literal():
    body = vec(3, vec(3, b"AAA") + vec(3, b"BB"))
    assert tls.parse_certificate_list(body) == [b"AAA", b"BB"]
    assert tls.parse_certificate_list(b"\x00\x00\x00") == []


@pytest.mark.parametrize("body", [b"", b"\x00\x00", b"\x00\x00\x05\x00\x00\x03AB",
                                  b"\x00\x00\x03\x00\x00\x00", vec(3, vec(3, b"AAA")) + b"x",
                                  b"\x00\x00\x04\x00\x00\x05AB"])
def test_parse_certificate_list_nonsense(body):
    with pytest.raises(Malformed):
        tls.parse_certificate_list(body)


def test_certificate_summary_esxi_like(esxi_cert):
    cert, _, _ = esxi_cert
    der = cert.public_bytes(serialization.Encoding.DER)
    info = tls.certificate_summary(der)
    assert info.parse_error is None
    assert info.sha1 == ":".join(f"{b:02X}" for b in hashlib.sha1(der).digest())
    assert len(info.sha1) == 59
    assert info.sha256.replace(":", "") == hashlib.sha256(der).hexdigest().upper()
    assert info.common_name == "localhost.localdomain"
    assert "OU=VMware ESX Server Default Certificate" in info.subject
    assert info.subject == info.issuer and info.self_signed is True
    assert info.not_before == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert info.not_after.tzinfo is not None and info.not_after > info.not_before
    assert info.serial == "4f5e6d"
    assert (info.key_type, info.key_size, info.key_curve) == ("RSA", 2048, None)
    assert info.signature_algorithm == "sha256WithRSAEncryption"
    assert info.der_length == len(der)


def test_certificate_summary_ec_key():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no common name")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "VMCA")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now).sign(key, hashes.SHA384()))
    info = tls.certificate_summary(cert.public_bytes(serialization.Encoding.DER))
    assert (info.key_type, info.key_size, info.key_curve) == ("EC", 256, "secp256r1")
    assert info.common_name is None and info.self_signed is False
    assert info.signature_algorithm == "ecdsa-with-SHA384"


@pytest.mark.parametrize("der", [b"", b"\x30\x03\x02\x01\x01", b"not a certificate at all"])
def test_certificate_summary_garbage_still_has_thumbprints(der):
    info = tls.certificate_summary(der)
    assert info.parse_error
    assert info.sha1 == tls.thumbprint(der) and info.sha256 == tls.thumbprint(der, "sha256")
    assert info.subject is None and info.not_after is None and info.key_type is None


# ---------------------------------------------------------------------------------------------
# handshake reassembly
# ---------------------------------------------------------------------------------------------

def test_reassembler_several_messages_in_one_payload():
    r = HandshakeReassembler()
    out = r.feed(handshake(2, b"SH") + handshake(11, b"CERT") + handshake(14, b""))
    assert out == [(2, b"SH"), (11, b"CERT"), (14, b"")]
    assert r.pending == 0


def test_reassembler_message_across_payloads():
    r = HandshakeReassembler()
    message = handshake(11, bytes(range(200)) * 100)
    assert r.feed(message[:3]) == []
    assert r.feed(message[3:5000]) == []
    assert r.pending == 5000
    assert r.feed(message[5000:] + handshake(14, b"")[:2]) == [(11, bytes(range(200)) * 100)]
    assert r.feed(handshake(14, b"")[2:]) == [(14, b"")]


def test_reassembler_too_large_keeps_step():
    r = HandshakeReassembler(max_message=100)
    with pytest.raises(HandshakeTooLarge) as info:
        r.feed(handshake(2, b"ok") + handshake(11, bytes(150))[:60])
    assert isinstance(info.value, Malformed)
    assert info.value.completed == [(2, b"ok")] and info.value.length == 150
    assert r.feed(bytes(94)) == []  # rest of the oversized body is discarded as it passes
    assert r.feed(handshake(14, b"")) == [(14, b"")]
    with pytest.raises(Malformed):
        HandshakeReassembler().feed(struct.pack("!I", 11 << 24 | (256 * 1024 + 1)))


def test_reassembler_skip_and_reset():
    r = HandshakeReassembler()
    r.feed(handshake(11, bytes(50))[:20])
    assert r.skip(10)  # lost bytes inside the message: it is dropped, framing kept
    assert r.feed(bytes(24) + handshake(14, b"")) == [(14, b"")]
    r.feed(handshake(11, bytes(50))[:20])
    assert not r.skip(100)  # loss runs past the message: framing is gone
    r.reset()
    assert r.pending == 0 and not r.skip(1)


# ---------------------------------------------------------------------------------------------
# real handshakes through TlsDirection
# ---------------------------------------------------------------------------------------------

def _negotiated_suite(pair: Pair) -> int:
    name = pair.client.cipher()[0]
    return next(c["id"] & 0xFFFF for c in pair.client_ctx.get_ciphers() if c["name"] == name)


def test_real_tls12_handshake(tls12):
    ch = hello_of(tls12.handshake_c2s, tls.ClientHello)
    assert ch.server_name == "esxi01.lab"
    assert ch.alpn == ["h2", "http/1.1"]
    assert 0x0304 not in ch.offered_versions and ch.max_version == 0x0303
    assert len(ch.ja3) == 32 and ch.ja4.startswith("t12d")
    sh = hello_of(tls12.handshake_s2c, tls.ServerHello)
    assert sh.selected_version == 0x0303 and sh.alpn == "http/1.1"
    assert sh.cipher_suite == _negotiated_suite(tls12)
    assert tls.cipher_name(sh.cipher_suite).endswith(tls12.client.cipher()[0].split("-")[-1])
    certs = next(e.parsed for e in events_of(tls12.handshake_s2c, kind=TlsHandshakeMessage)
                 if e.msg_type == 11)
    der = tls12.client.getpeercert(binary_form=True)
    assert len(certs) == 1
    assert certs[0].sha1 == ":".join(f"{b:02X}" for b in hashlib.sha1(der).digest())
    assert certs[0].sha256 == tls.thumbprint(der, "sha256")
    assert certs[0].common_name == "localhost.localdomain"


def test_real_tls13_handshake(tls13):
    ch = hello_of(tls13.handshake_c2s, tls.ClientHello)
    assert ch.server_name == "esxi01.lab" and ch.alpn == ["h2", "http/1.1"]
    assert 0x0304 in ch.supported_versions and ch.max_version == 0x0304
    assert ch.ja4.startswith("t13d") and ch.ja4[8:10] == "h2"
    sh = hello_of(tls13.handshake_s2c, tls.ServerHello)
    assert sh.selected_version == 0x0304 and not sh.is_hello_retry_request
    assert tls.cipher_name(sh.cipher_suite) == tls13.client.cipher()[0]
    assert sh.cipher_suite == _negotiated_suite(tls13)
    server = events_of(tls13.s2c, "server")
    # the certificate is encrypted in TLS 1.3: no Certificate message, records after SH opaque
    assert not any(isinstance(e, TlsHandshakeMessage) and e.msg_type == 11 for e in server)
    records = [e for e in server if isinstance(e, TlsRecord)]
    assert records[0].content_type == 22 and not records[0].encrypted
    assert all(r.encrypted for r in records[1:] if r.content_type != 20)


@pytest.mark.parametrize("fixture", ["tls12", "tls13"])
def test_counters_and_app_data(fixture, request):
    pair = request.getfixturevalue(fixture)
    for stream, role, lines in ((pair.c2s, "client", 3), (pair.s2c, "server", 3)):
        d = TlsDirection(role)
        events = d.feed(bytes(stream), 0.0, 0)
        records = [e for e in events if isinstance(e, TlsRecord)]
        assert d.records == len(records)
        assert d.bytes == len(stream) == sum(5 + r.length for r in records)
        app = [r for r in records if r.content_type == 23]
        assert d.app_data_records == len(app) and d.app_data_bytes == sum(r.length for r in app)
        assert d.app_data_records >= lines
        assert d.handshake_count == 1 and d.role == role and not d.ended
        assert d.finish(0.0, 0) == []


def test_change_cipher_spec_marks_encrypted(tls12):
    events = events_of(tls12.c2s, "client")
    kinds = [type(e).__name__ for e in events]
    ccs = kinds.index("TlsChangeCipherSpec")
    finished = events[ccs + 1]
    assert isinstance(finished, TlsRecord) and finished.content_type == 22 and finished.encrypted
    assert not any(isinstance(e, TlsHandshakeMessage) for e in events[ccs:])


@FUZZ
@given(cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=25))
def test_chunking_does_not_change_events(tls12, tls13, cuts):
    for stream, role in ((tls12.c2s, "client"), (tls12.s2c, "server"),
                         (tls13.c2s, "client"), (tls13.s2c, "server")):
        whole = TlsDirection(role).feed(bytes(stream) + b"\x2b\x00\x00\x00rest", 0.0, 0)
        split = feed_chunks(TlsDirection(role), bytes(stream) + b"\x2b\x00\x00\x00rest", cuts)
        assert strip(split) == strip(whole)


@pytest.mark.parametrize("fixture", ["tls12", "tls13"])
def test_byte_by_byte_equals_whole(fixture, request):
    pair = request.getfixturevalue(fixture)
    for stream, role in ((pair.c2s, "client"), (pair.s2c, "server")):
        whole = TlsDirection(role).feed(bytes(stream), 0.0, 0)
        d = TlsDirection(role)
        single = [e for i in range(len(stream)) for e in d.feed(stream[i:i + 1], 0.0, 0)]
        assert single == whole


def test_event_time_is_that_of_the_first_header_byte():
    stream = record(22, handshake(1, client_hello_body())) + record(23, b"x" * 10)
    d = TlsDirection()
    events = d.feed(stream[:2], 1.0, 1) + d.feed(stream[2:30], 2.0, 2) + d.feed(stream[30:], 3.0, 3)
    hello_record, message, app = events
    assert (hello_record.ts, hello_record.frame) == (1.0, 1)
    assert (message.ts, message.frame) == (1.0, 1) and isinstance(message.parsed, ClientHello)
    assert (app.ts, app.frame, app.content_type) == (3.0, 3, 23)


def test_message_spanning_records_keeps_its_start_time():
    message = handshake(11, vec(3, vec(3, b"X" * 30)))
    stream = record(22, message[:10]) + record(22, message[10:] + handshake(14, b""))
    d = TlsDirection("server")
    events = d.feed(stream[:15], 5.0, 5) + d.feed(stream[15:], 6.0, 6)
    messages = [e for e in events if isinstance(e, TlsHandshakeMessage)]
    assert [(m.msg_type, m.ts) for m in messages] == [(11, 5.0), (14, 6.0)]
    assert messages[0].parsed[0].parse_error  # "X"*30 is no certificate, but it is summarised


# ---------------------------------------------------------------------------------------------
# second handshake on the same stream, end of TLS
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("versions", [("TLSv1_2", "TLSv1_2"), ("TLSv1_3", "TLSv1_3"),
                                      ("TLSv1_2", "TLSv1_3")])
def test_second_handshake_is_reported_once_per_direction(two_handshakes, versions):
    c2s, s2c = two_handshakes[versions]
    for stream, role, hello_type in ((c2s, "client", ClientHello), (s2c, "server", tls.ServerHello)):
        d = TlsDirection(role)
        events = d.feed(stream, 0.0, 0)
        new = [e for e in events if isinstance(e, TlsNewHandshake)]
        assert len(new) == 1 and isinstance(new[0].hello, hello_type)
        assert d.handshake_count == 2
        hellos = [e for e in events
                  if isinstance(e, TlsHandshakeMessage) and isinstance(e.parsed, hello_type)]
        assert len(hellos) == 2 and new[0].hello == hellos[1].parsed
        # the new hello's own record is reported as clear, and comes before the event
        at = events.index(new[0])
        assert isinstance(events[at - 1], TlsRecord) and not events[at - 1].encrypted
        assert not any(isinstance(e, TlsWeird) for e in events)
    assert hellos[1].parsed.selected_version == (0x0304 if versions[1] == "TLSv1_3" else 0x0303)


def test_second_handshake_without_role_learns_it(two_handshakes):
    c2s, _ = two_handshakes[("TLSv1_3", "TLSv1_3")]
    d = TlsDirection()
    events = d.feed(c2s, 0.0, 0)
    assert d.role == "client" and sum(isinstance(e, TlsNewHandshake) for e in events) == 1


@FUZZ
@given(cuts=st.lists(st.integers(min_value=1, max_value=6000), max_size=20))
def test_second_handshake_chunking(two_handshakes, cuts):
    c2s, s2c = two_handshakes[("TLSv1_2", "TLSv1_3")]
    for stream, role in ((c2s, "client"), (s2c, "server")):
        whole = TlsDirection(role).feed(stream, 0.0, 0)
        assert strip(feed_chunks(TlsDirection(role), stream, cuts)) == strip(whole)


def test_hello_retry_request_is_not_a_new_handshake(esxi_cert):
    pair = Pair(esxi_cert, ssl.TLSVersion.TLSv1_3, server_curve="secp384r1").handshake()
    pair.talk((b"x", b"y"))
    server = events_of(bytes(pair.s2c), "server")
    hellos = [e.parsed for e in server if isinstance(e, TlsHandshakeMessage) and e.msg_type == 2]
    assert [h.is_hello_retry_request for h in hellos] == [True, False]
    client = events_of(bytes(pair.c2s), "client")
    assert sum(isinstance(e, TlsHandshakeMessage) and e.msg_type == 1 for e in client) == 2
    for events in (server, client):
        assert not any(isinstance(e, (TlsNewHandshake, TlsWeird)) for e in events)


def test_new_hello_needs_protected_traffic_first():
    hello = record(22, handshake(1, client_hello_body()))
    d = TlsDirection("client")
    events = d.feed(hello + record(20, b"\x01") + hello, 0.0, 0)
    assert not any(isinstance(e, TlsNewHandshake) for e in events) and d.handshake_count == 1
    events = d.feed(record(23, b"secret") + hello, 0.0, 0)
    assert sum(isinstance(e, TlsNewHandshake) for e in events) == 1 and d.handshake_count == 2


def test_encrypted_record_that_merely_starts_like_a_hello_stays_encrypted():
    d = TlsDirection("client")
    d.feed(record(22, handshake(1, client_hello_body())) + record(20, b"\x01"), 0.0, 0)
    fake = b"\x01\x00\x00\x30\x03\x03" + bytes(48)  # hello-like prefix, body does not parse
    events = d.feed(record(22, fake) + record(22, b"\x02\x00"), 0.0, 0)
    assert [(e.content_type, e.encrypted) for e in events] == [(22, True), (22, True)]


def test_app_data_then_garbage_ends_tls(tls12):
    garbage = b"\x2b\x00\x00\x00PlainText" + bytes(255)  # an NFC_CLIENTRANDOM (nbd hand-off)
    d = TlsDirection("client")
    events = d.feed(bytes(tls12.c2s) + garbage, 4.0, 4)
    end = events[-1]
    assert isinstance(end, TlsEnd) and end.reason == "not_tls" and end.remainder == garbage
    assert d.ended and d.end is end
    with pytest.raises(RuntimeError):
        d.feed(b"more", 5.0, 5)
    with pytest.raises(RuntimeError):
        d.gap(1, 5.0, 5)
    assert d.finish(5.0, 5) == []


def test_end_remainder_collects_a_header_split_across_chunks(tls12):
    d = TlsDirection("server")
    d.feed(bytes(tls12.s2c), 1.0, 1)
    assert d.feed(b"\x17\x03", 2.0, 2) == []  # could still be a record header
    events = d.feed(b"\x03\xff\xffrest", 3.0, 3)  # length 65535: no, it is not
    assert events == [TlsEnd(2.0, 2, "not_tls", b"\x17\x03\x03\xff\xffrest")]


def test_first_bytes_not_tls_end_at_once():
    d = TlsDirection()
    assert d.feed(b"220 VMware Authentication Daemon\r\n", 0.0, 7) == [
        TlsEnd(0.0, 7, "not_tls", b"220 VMware Authentication Daemon\r\n")]


# ---------------------------------------------------------------------------------------------
# alerts, CCS, encrypted state
# ---------------------------------------------------------------------------------------------

def test_clear_and_encrypted_alerts():
    d = TlsDirection("server")
    events = d.feed(record(21, b"\x02\x28\x01\x00"), 0.0, 0)
    assert events[1:] == [TlsAlert(0.0, 0, "fatal", "handshake_failure", False),
                          TlsAlert(0.0, 0, "warning", "close_notify", False)]
    d.mark_encrypted()
    events = d.feed(record(21, bytes(26)) + record(21, b"\x01\x00"), 0.0, 0)
    assert [e for e in events if isinstance(e, TlsAlert)] == [
        TlsAlert(0.0, 0, None, None, True), TlsAlert(0.0, 0, "warning", "close_notify", False)]
    assert events[0].encrypted and not events[2].encrypted


def test_bad_alerts_and_ccs_are_weird_not_errors():
    d = TlsDirection()
    events = d.feed(record(21, b"\x07\x28") + record(21, b"\x02") + record(20, b"\x02")
                    + record(21, b"\x01\xfe"), 0.0, 0)
    weird = [e.kind for e in events if isinstance(e, TlsWeird)]
    assert weird == ["bad_alert", "bad_alert", "bad_change_cipher_spec"]
    assert events[-1] == TlsAlert(0.0, 0, "warning", "unknown(254)", False)
    assert not any(isinstance(e, TlsChangeCipherSpec) for e in events) and not d.encrypted


def test_malformed_clear_handshake_is_weird():
    d = TlsDirection()
    events = d.feed(record(22, handshake(1, b"\x03\x03short")) + record(22, handshake(11, b"\x00")),
                    0.0, 0)
    assert [e.kind for e in events if isinstance(e, TlsWeird)] == ["malformed_handshake"] * 2
    messages = [e for e in events if isinstance(e, TlsHandshakeMessage)]
    assert [(m.msg_type, m.parsed) for m in messages] == [(1, None), (11, None)]


def test_unexpected_hello_direction_is_weird():
    d = TlsDirection("client")
    events = d.feed(record(22, handshake(2, server_hello_body())), 0.0, 0)
    assert [e.kind for e in events if isinstance(e, TlsWeird)] == ["unexpected_hello"]
    assert d.handshake_count == 0
    with pytest.raises(ValueError):
        TlsDirection("proxy")


def test_oversized_handshake_message_is_weird_and_skipped():
    body = vec(3, vec(3, bytes(300_000)))
    message = handshake(11, body)
    stream = b"".join(record(22, message[i:i + 16384]) for i in range(0, len(message), 16384))
    d = TlsDirection("server")
    events = d.feed(record(22, handshake(2, server_hello_body())) + stream
                    + record(22, handshake(14, b"")), 0.0, 0)
    assert [e.kind for e in events if isinstance(e, TlsWeird)] == ["handshake_too_large"]
    assert [e.msg_type for e in events if isinstance(e, TlsHandshakeMessage)] == [2, 14]


def test_heartbeat_and_zero_length_records():
    d = TlsDirection()
    events = d.feed(record(24, b"\x01\x00\x00") + record(23, b"") + record(22, b""), 0.0, 0)
    assert [(e.content_type, e.length, e.encrypted) for e in events] == [
        (24, 3, False), (23, 0, True), (22, 0, False)]


# ---------------------------------------------------------------------------------------------
# gaps, resync, truncation
# ---------------------------------------------------------------------------------------------

def app_stream(n: int, size: int = 1000) -> bytes:
    return b"".join(record(23, bytes([i % 251]) * size) for i in range(n))


def test_gap_inside_skipped_body_is_only_counted():
    stream = app_stream(3)
    d = TlsDirection()
    events = d.feed(stream[:500], 0.0, 0) + d.gap(400, 1.0, 1) + d.feed(stream[900:], 2.0, 2)
    assert [e.length for e in events if isinstance(e, TlsRecord)] == [1000] * 3
    assert not any(isinstance(e, TlsWeird) for e in events)
    assert d.bytes_lost == 400 and d.gap(0, 3.0, 3) == []
    with pytest.raises(ValueError):
        d.gap(-1, 3.0, 3)


def test_gap_across_records_resyncs_on_same_version():
    stream = app_stream(5)
    d = TlsDirection()
    events = d.feed(stream[:500], 0.0, 0)
    events += d.gap(1500, 1.0, 1)  # loses the rest of record 1 and the header of record 2
    events += d.feed(stream[2000:2003], 2.0, 2) + d.feed(stream[2003:], 3.0, 3)
    weird = [e for e in events if isinstance(e, TlsWeird)]
    assert [w.kind for w in weird] == ["gap_desync", "resync"]
    assert "skipped 10 bytes" in weird[1].detail  # the last 10 body bytes of record 2
    assert d.records == 4 and d.bytes_lost == 1500
    # records 3..5 are back in step
    assert [e.length for e in events if isinstance(e, TlsRecord)] == [1000] * 4


def test_resync_candidate_that_fails_does_not_end_tls():
    d = TlsDirection()
    d.feed(record(23, b"abc"), 0.0, 0)
    d.gap(10, 1.0, 1)
    fake = b"\x17\x03\x03\x00\x02ok" + b"\x99garbage"  # plausible header, then nonsense
    events = d.feed(b"zz" + fake + record(23, b"real"), 2.0, 2)
    kinds = [e.kind for e in events if isinstance(e, TlsWeird)]
    assert kinds == ["resync", "resync_failed", "resync"]
    assert not d.ended and events[-1] == TlsRecord(2.0, 2, 23, 0x0303, 4, True)


def test_gap_in_clear_handshake_record():
    cert_message = handshake(11, vec(3, vec(3, bytes(3000))))
    stream = record(22, cert_message + handshake(14, b""))
    d = TlsDirection("server")
    events = d.feed(stream[:100], 0.0, 0) + d.gap(50, 1.0, 1) + d.feed(stream[150:], 2.0, 2)
    assert [e.kind for e in events if isinstance(e, TlsWeird)] == ["gap_in_record"]
    # the certificate is lost, the message after it is still found
    assert [e.msg_type for e in events if isinstance(e, TlsHandshakeMessage)] == [14]
    d2 = TlsDirection("server")
    events = d2.feed(stream[:7], 0.0, 0) + d2.gap(3000, 1.0, 1)  # loses the message boundary
    assert [e.kind for e in events if isinstance(e, TlsWeird)] == ["gap_in_record"]
    assert d2.feed(stream[3007:], 2.0, 2) == [] and d2.records == 1  # rest of the record skipped
    assert d2.feed(record(23, b"x"), 3.0, 3)[0].content_type == 23


def test_gap_in_probed_record_emits_it_as_encrypted():
    d = TlsDirection("client")
    d.feed(record(20, b"\x01"), 0.0, 0)
    events = d.feed(record(22, bytes(40))[:7], 1.0, 1) + d.gap(10, 2.0, 2)
    assert events[0] == TlsRecord(1.0, 1, 22, 0x0303, 40, True)
    assert events[1].kind == "gap_in_record"


def test_finish_reports_truncation():
    d = TlsDirection()
    d.feed(record(23, bytes(100))[:50], 0.0, 0)
    assert [e.kind for e in d.finish(1.0, 1)] == ["truncated"]
    d = TlsDirection()
    d.feed(b"\x17\x03", 0.0, 0)
    assert "header" in d.finish(1.0, 1)[0].detail
    d = TlsDirection()
    d.feed(record(22, handshake(11, bytes(100))[:30]), 0.0, 0)
    assert "handshake message" in d.finish(1.0, 1)[0].detail
    d = TlsDirection("client")
    d.mark_encrypted()
    d.feed(record(22, bytes(40))[:8], 0.0, 0)
    assert [type(e) for e in d.finish(1.0, 1)] == [TlsRecord, TlsWeird]
    d = TlsDirection()
    d.feed(b"\x17", 0.0, 0)
    d.gap(5, 0.0, 0)
    assert d.finish(1.0, 1)[0].detail == "stream ended while resynchronising"


def test_application_data_uses_constant_memory():
    chunk = app_stream(4, 16384)  # 4 full-size records, 65 KiB
    d = TlsDirection()
    d.feed(chunk, 0.0, 0)
    tracemalloc.start()
    try:
        for i in range(160):  # ~10 MiB more
            d.feed(chunk, float(i), i)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.app_data_records == 644 and d.app_data_bytes == 644 * 16384
    assert peak < 256 * 1024


# ---------------------------------------------------------------------------------------------
# fuzz: declared exceptions only, and feed() never raises
# ---------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=300))
def test_pure_functions_raise_only_declared_errors(data):
    for parse in (tls.parse_record_header, tls.parse_handshake_header, tls.parse_alert,
                  tls.parse_client_hello, tls.parse_server_hello, tls.parse_certificate_list):
        try:
            parse(data)
        except (Malformed, NeedMoreData):
            pass
    tls.plausible_record_header(data)
    tls.plausible_record_header(data, partial=True)
    info = tls.certificate_summary(data)
    assert info.sha1 == tls.thumbprint(data)
    try:
        HandshakeReassembler(max_message=200).feed(data)
    except Malformed:
        pass


@FUZZ
@given(body=st.binary(max_size=120))
def test_hello_parsers_on_mutated_structure(body):
    for parse, builder in ((tls.parse_client_hello, client_hello_body),
                           (tls.parse_server_hello, server_hello_body)):
        real = builder(extensions=[sni(b"h"), alpn(b"h2"), ext(43, vec(1, b"\x03\x04"))])
        for candidate in (body, real[:len(body)], real[:10] + body):
            try:
                parse(candidate)
            except Malformed as exc:
                assert isinstance(exc, (Port902Error, ValueError))


@FUZZ
@given(chunks=st.lists(st.binary(max_size=64), max_size=12), role=st.sampled_from([None, "client", "server"]),
       gaps=st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_feed_never_raises_on_arbitrary_bytes(chunks, role, gaps):
    d = TlsDirection(role)
    for i, chunk in enumerate(chunks):
        if d.ended:
            break
        d.feed(b"\x16\x03\x01" + chunk if i == 0 else chunk, float(i), i)
        if i < len(gaps) and not d.ended:
            d.gap(gaps[i], float(i), i)
    d.finish(9.0, 9)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0, max_value=5000), st.integers(1, 255)),
                      min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=1, max_value=5000), max_size=8))
def test_feed_never_raises_on_damaged_handshakes(tls12, tls13, flips, cuts):
    for stream, role in ((tls12.s2c, "server"), (tls13.c2s, "client")):
        damaged = bytearray(stream)
        for at, xor in flips:
            damaged[at % len(damaged)] ^= xor
        d = TlsDirection(role)
        feed_chunks(d, bytes(damaged), cuts)
        d.finish(0.0, 0)


# ---------------------------------------------------------------------------------------------
# corners
# ---------------------------------------------------------------------------------------------

def _self_signed(key, algorithm, public_key=None, signer=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(public_key or key.public_key()).serial_number(7)
               .not_valid_before(now).not_valid_after(now))
    return builder.sign(signer or key, algorithm).public_bytes(serialization.Encoding.DER)


def test_certificate_key_types():
    edkey = ed25519.Ed25519PrivateKey.generate()
    cases = [
        (_self_signed(edkey, None), ("Ed25519", 256, None), "ed25519"),
        (_self_signed(ed448.Ed448PrivateKey.generate(), None), ("Ed448", 456, None), "ed448"),
        (_self_signed(dsa.generate_private_key(1024), hashes.SHA256()), ("DSA", 1024, None),
         "dsa-with-sha256"),
        (_self_signed(edkey, None, public_key=x25519.X25519PrivateKey.generate().public_key()),
         ("X25519", 256, None), "ed25519"),
    ]
    for der, key, signature in cases:
        info = tls.certificate_summary(der)
        assert (info.key_type, info.key_size, info.key_curve) == key
        assert info.signature_algorithm == signature and info.parse_error is None
    assert tls.x509._describe_key(object()) == ("object", None, None)


def test_certificate_with_unknown_key_algorithm_keeps_other_fields():
    der = _self_signed(ed25519.Ed25519PrivateKey.generate(), None)
    oid = b"\x06\x03\x2b\x65\x70"  # 1.3.101.112 (Ed25519): tbs signature, key, signature
    first = der.index(oid)
    second = der.index(oid, first + 1)
    damaged = der[:second] + b"\x06\x03\x2b\x65\x7f" + der[second + len(oid):]
    info = tls.certificate_summary(damaged)
    assert info.key_type == "1.3.101.127" and info.key_size is None
    assert info.common_name == "k" and info.sha1 == tls.thumbprint(damaged)


def test_duplicate_extension_first_one_counts():
    ch = tls.parse_client_hello(client_hello_body(extensions=[sni(b"first"), sni(b"second")]))
    assert ch.server_name == "first" and ch.extension_types == [0, 0]


def test_ja4_with_unparsable_alpn_in_a_hand_made_hello():
    ch = ClientHello(0x0303, bytes(32), b"", [0x1301], [0], [(16, b"\x00\x09\x02h2")])
    assert ch.ja4[8:10] == "00"


def test_reassembler_oversized_message_inside_one_payload():
    r = HandshakeReassembler(max_message=100)
    with pytest.raises(HandshakeTooLarge) as info:
        r.feed(handshake(11, bytes(150)) + handshake(14, b""))
    assert info.value.completed == [] and r.pending == 4
    assert r.feed(b"") == [(14, b"")]
    with pytest.raises(HandshakeTooLarge, match="150 bytes exceeds 100"):
        r.feed(handshake(11, bytes(150))[:20])  # -> discarding 134 more bytes
    assert not r.skip(200)
    assert r.skip(100) and r.skip(34) and r.pending == 0


def test_gap_that_ends_a_clear_record_exactly():
    d = TlsDirection("server")
    stream = record(22, handshake(11, bytes(20)))
    events = d.feed(stream[:10], 0.0, 0) + d.gap(len(stream) - 10, 1.0, 1)
    assert [e.kind for e in events if isinstance(e, TlsWeird)] == ["gap_in_record"]
    assert d.feed(record(23, b"x"), 2.0, 2)[0].content_type == 23


def test_encrypted_heartbeat_counts_as_protected_traffic():
    d = TlsDirection("client")
    d.feed(record(22, handshake(1, client_hello_body())), 0.0, 0)
    d.mark_encrypted()
    events = d.feed(record(24, bytes(30)) + record(22, handshake(1, client_hello_body())), 0.0, 0)
    assert events[0] == TlsRecord(0.0, 0, 24, 0x0303, 30, True)
    assert sum(isinstance(e, TlsNewHandshake) for e in events) == 1


def test_resync_skips_implausible_candidates():
    d = TlsDirection()
    d.feed(record(23, b"abc"), 0.0, 0)
    d.gap(3, 1.0, 1)
    events = d.feed(b"\x17\x03\x03\xff\xff" + b"\x16\x03\x01\x00\x01" + record(23, b"ok"), 2.0, 2)
    assert [e.kind for e in events if isinstance(e, TlsWeird)] == ["resync"]
    assert "skipped 10 bytes" in events[0].detail  # wrong length, then wrong version
    assert events[-1] == TlsRecord(2.0, 2, 23, 0x0303, 2, True)
