"""TLS decryption with a key log (issue 9): key log parsing, key derivation and record
decryption against real TLS traffic from Python's ssl module (OpenSSL), every suite family."""

import os
import pickle
import ssl
import subprocess
import sys
import warnings

import pytest

from dissect.port902.decrypt import ConnectionDecryptor, parse_keylog, load_keylog, KeyLogError
from dissect.port902.decrypt.schedule import hkdf_expand_label
from dissect.port902.decrypt.prf import p_hash
from dissect.port902.lab.certs import host_cert

NO_ETM = 1 << 19  # SSL_OP_NO_ENCRYPT_THEN_MAC (OpenSSL 1.1+/3.x)
VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
            "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class Pair:
    """A client and a server in memory; ``wire`` is what went on the stream, in order."""

    def __init__(self, tmp_path, version="1.2", ciphers=None, etm=True, keylog=None, tls13_suite=None):
        cert = host_cert("decrypt.lab")
        crt, key = tmp_path / "c.crt", tmp_path / "c.key"
        crt.write_bytes(cert.cert_pem)
        key.write_bytes(cert.key_pem)
        self.keylog = keylog or str(tmp_path / "keys.txt")
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(str(crt), str(key))
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
        cctx.keylog_filename = self.keylog
        for ctx in (sctx, cctx):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
            if version in ("1.0", "1.1"):
                ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
            elif ciphers:
                ctx.set_ciphers(ciphers)
            if not etm:
                ctx.options |= NO_ETM
        self.ci, self.co, self.si, self.so = (ssl.MemoryBIO() for _ in range(4))
        self.c = cctx.wrap_bio(self.ci, self.co, server_side=False)
        self.s = sctx.wrap_bio(self.si, self.so, server_side=True)
        self.wire = []  # (from_client, bytes)
        self._handshake()

    def _move(self):
        moved = False
        for out, peer, fc in ((self.co, self.si, True), (self.so, self.ci, False)):
            data = out.read()
            if data:
                self.wire.append((fc, data))
                peer.write(data)
                moved = True
        return moved

    def _handshake(self):
        done = [False, False]
        for _ in range(50):
            for i, obj in enumerate((self.c, self.s)):
                if not done[i]:
                    try:
                        obj.do_handshake()
                        done[i] = True
                    except ssl.SSLWantReadError:
                        pass
            if not self._move() and all(done):
                break
        self.drain()

    def drain(self):
        out = b""
        for obj in (self.c, self.s):
            while True:
                try:
                    chunk = obj.read(65536)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    break
                if not chunk:
                    break
                out += chunk
        self._move()
        return out

    def send(self, from_client, data):
        obj = self.c if from_client else self.s
        obj.write(data)
        self._move()
        got = self.drain()
        assert got == data

    def key_update(self):
        self.c.write(b"")  # nothing; Python has no KeyUpdate API


def _read(path):
    with open(path) as handle:
        return handle.read()


def run(pair, keylog_text=None):
    keylog = parse_keylog(keylog_text if keylog_text is not None else _read(pair.keylog))
    plain, weird, certs = [], [], []
    dec = ConnectionDecryptor(keylog, lambda hs, fc, ct, data, ts, fr: plain.append((hs, fc, ct, data)),
                              lambda ts, fr, kind, detail: weird.append((kind, detail)),
                              lambda hs, ders, ts, fr: certs.append((hs, ders)))
    for i, (fc, data) in enumerate(pair.wire):
        # split every flight in odd pieces: record boundaries must not matter
        for j in range(0, len(data), 777):
            dec.data(fc, data[j:j + 777], float(i), i + 1)
    return dec, plain, weird, certs


def app(plain, from_client, hs=1):
    return b"".join(d for h, fc, ct, d in plain if h == hs and fc == from_client and ct == 23)


CASES = [
    ("1.3", None, True, None),
    ("1.3", None, True, "TLS_CHACHA20_POLY1305_SHA256"),
    ("1.3", None, True, "TLS_AES_128_GCM_SHA256"),
    ("1.2", "ECDHE-RSA-AES128-GCM-SHA256", True, None),
    ("1.2", "ECDHE-RSA-AES256-GCM-SHA384", True, None),
    ("1.2", "ECDHE-RSA-CHACHA20-POLY1305", True, None),
    ("1.2", "ECDHE-RSA-AES128-SHA256", True, None),
    ("1.2", "ECDHE-RSA-AES128-SHA256", False, None),
    ("1.2", "ECDHE-RSA-AES256-SHA384", True, None),
    ("1.2", "ECDHE-RSA-AES256-SHA384", False, None),
    ("1.2", "ECDHE-RSA-AES128-SHA", False, None),
    ("1.2", "AES256-SHA", True, None),
    ("1.1", "ECDHE-RSA-AES256-SHA", False, None),
    ("1.0", "AES128-SHA", False, None),
    ("1.0", "ECDHE-RSA-AES256-SHA", True, None),
]


MESSAGES = [(True, b"USER root\r\n"), (False, b"331 Password required for root.\r\n"),
            (True, bytes(range(256)) * 160), (False, b"x" * 5)]


def _pair_in_subprocess(tmp_path, suite13):
    """Python's ssl cannot choose TLS 1.3 suites: a child process with an OpenSSL config can."""
    conf = tmp_path / "openssl.cnf"
    conf.write_text("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = sd\n"
                    f"[sd]\nCiphersuites = {suite13}\n")
    code = ("import sys, pickle, pathlib; sys.path.insert(0, sys.argv[1]); import test_decrypt as t; "
            "p = t.Pair(pathlib.Path(sys.argv[2]), '1.3'); [p.send(fc, d) for fc, d in t.MESSAGES]; "
            "pickle.dump((p.wire, p.keylog), open(sys.argv[2] + '/wire.pickle', 'wb'))")
    env = dict(os.environ, OPENSSL_CONF=str(conf))
    subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), str(tmp_path)], env=env, check=True)
    with open(tmp_path / "wire.pickle", "rb") as handle:
        wire, keylog = pickle.load(handle)

    class Recorded:
        pass
    rec = Recorded()
    rec.wire, rec.keylog = wire, keylog
    return rec


@pytest.mark.parametrize("version,ciphers,etm,suite13", CASES)
def test_decrypts_real_openssl_traffic(tmp_path, version, ciphers, etm, suite13):
    messages = MESSAGES
    if suite13:
        pair = _pair_in_subprocess(tmp_path, suite13)
    else:
        pair = Pair(tmp_path, version, ciphers, etm)
        for fc, data in messages:
            pair.send(fc, data)
    dec, plain, weird, certs = run(pair)
    assert weird == []
    assert app(plain, True) == b"".join(d for fc, d in messages if fc)
    assert app(plain, False) == b"".join(d for fc, d in messages if not fc)
    hk = dec.handshakes[0]
    assert hk.keys == "found"
    if suite13:
        assert hk.suite.name == suite13
    if ciphers and "SHA" in ciphers and "GCM" not in ciphers and "CHACHA" not in ciphers:
        assert hk.suite.cipher == "cbc" and hk.etm == etm
    if version == "1.3":  # the encrypted handshake was read: the certificate is known
        assert certs and certs[0][1][0] == host_cert("decrypt.lab").der


def test_second_handshake_on_the_same_stream_is_decrypted_with_its_own_keys(tmp_path):
    keys = str(tmp_path / "keys.txt")
    one = Pair(tmp_path, "1.2", keylog=keys)
    one.send(True, b"CONNECT /vmfs/volumes/ds/vm/vm.vmx mks\r\n")
    one.send(False, b"200 Connect /vmfs/volumes/ds/vm/vm.vmx\r\n")
    two = Pair(tmp_path, "1.3", keylog=keys)
    two.send(True, b"0123456789abcdef")
    two.send(False, b"RFB-ish server init")

    class Both:
        keylog = keys
        wire = one.wire + two.wire
    dec, plain, weird, _ = run(Both)
    assert weird == []
    assert app(plain, True, 1).startswith(b"CONNECT")
    assert app(plain, True, 2) == b"0123456789abcdef"
    assert app(plain, False, 2) == b"RFB-ish server init"
    assert [h.version for h in dec.handshakes] == [0x0303, 0x0304]
    # only the second handshake's keys: TLS #1 stays as it is, TLS #2 is read
    text = _read(keys).splitlines()
    cr2 = dec.handshakes[1].client_random.hex()
    dec, plain, weird, _ = run(Both, "\n".join(x for x in text if cr2 in x))
    assert [h.keys for h in dec.handshakes] == ["missing", "found"]
    assert app(plain, True, 1) == b"" and app(plain, True, 2) == b"0123456789abcdef"
    assert weird == []


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_wrong_key_is_a_weird_row_not_an_exception(tmp_path, version):
    pair = Pair(tmp_path, version)
    pair.send(True, b"USER root\r\n")
    pair.send(False, b"331 Password required for root.\r\n")
    text = _read(pair.keylog)
    bad = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:  # flip one bit of every secret
            secret = bytearray(bytes.fromhex(parts[2]))
            secret[0] ^= 1
            line = f"{parts[0]} {parts[1]} {secret.hex()}"
        bad.append(line)
    dec, plain, weird, _ = run(pair, "\n".join(bad))
    assert app(plain, True) == b"" and app(plain, False) == b""
    assert {k for k, _ in weird} == {"decrypt_failed"}
    assert len(weird) == 2  # once per direction, not once per record
    assert dec.handshakes[0].failed == [True, True]


def test_tls13_with_only_application_secrets(tmp_path):
    pair = Pair(tmp_path, "1.3")
    pair.send(True, b"PASS x\r\n")
    text = _read(pair.keylog).splitlines()
    only = "\n".join(x for x in text if "HANDSHAKE" not in x)
    dec, plain, weird, certs = run(pair, only)
    assert app(plain, True) == b"PASS x\r\n" and weird == [] and certs == []


def test_keylog_parsing(tmp_path):
    log = parse_keylog("# comment\n\nCLIENT_RANDOM " + "11" * 32 + " " + "22" * 48 + "\n"
                       "SERVER_TRAFFIC_SECRET_0 " + "33" * 32 + " " + "44" * 32 + "\r\n"
                       "garbage line\nCLIENT_RANDOM zz 00\n")
    assert log.master_secret(b"\x11" * 32) == b"\x22" * 48
    assert log.tls13_secret(b"\x33" * 32, "SERVER_TRAFFIC_SECRET_0") == b"\x44" * 32
    assert log.bad_lines == 2 and len(log) == 2
    with pytest.raises(KeyLogError, match="cannot read"):
        load_keylog(tmp_path / "missing.keys")
    (tmp_path / "bin.keys").write_bytes(b"\x00\x01\x02")
    with pytest.raises(KeyLogError, match="not text"):
        load_keylog(tmp_path / "bin.keys")


def test_kdf_known_answers():
    # RFC 8448 §3 (simple 1-RTT): server handshake traffic secret -> key and iv
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label("sha256", secret, b"key", b"", 16).hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label("sha256", secret, b"iv", b"", 12).hex() == "5d313eb2671276ee13000b30"
    # P_SHA256 is HMAC-chained: the first block is HMAC(secret, HMAC(secret, seed) + seed)
    import hmac, hashlib
    a1 = hmac.new(b"k", b"seed", hashlib.sha256).digest()
    assert p_hash("sha256", b"k", b"seed", 40)[:32] == hmac.new(b"k", a1 + b"seed", hashlib.sha256).digest()


def test_tls13_key_update_checked_by_openssl(tmp_path):
    """Records after a KeyUpdate use the next secret (RFC 8446 §7.2): records built here with
    our key schedule are accepted by OpenSSL's server, and the decryptor follows the update."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    from dissect.port902.decrypt.schedule import next_secret, traffic_keys

    pair = Pair(tmp_path, "1.3")
    pair.send(True, b"before ")
    dec, _, _, _ = run(pair)
    hk = dec.handshakes[0]
    suite = hk.suite
    secret = parse_keylog(_read(pair.keylog)).tls13_secret(hk.client_random, "CLIENT_TRAFFIC_SECRET_0")
    seq = 1  # "before " went out as record 0 under secret 0

    def record(secret, seq, inner_type, data):
        key, iv = traffic_keys(suite, secret)
        aead = AESGCM(key) if suite.cipher == "gcm" else ChaCha20Poly1305(key)
        pt = data + bytes([inner_type])
        header = bytes([23, 3, 3]) + (len(pt) + 16).to_bytes(2, "big")
        nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
        return header + aead.encrypt(nonce, pt, header)

    wire = record(secret, seq, 22, b"\x18\x00\x00\x01\x00")  # KeyUpdate, update_not_requested
    wire += record(next_secret(suite, secret), 0, 23, b"after one update ")
    wire += record(next_secret(suite, secret), 1, 22, b"\x18\x00\x00\x01\x00")
    wire += record(next_secret(suite, next_secret(suite, secret)), 0, 23, b"after two")
    pair.si.write(wire)
    assert pair.drain() == b"after one update after two"  # OpenSSL agrees with our key schedule
    pair.wire.append((True, wire))
    dec, plain, weird, _ = run(pair)
    assert weird == [] and app(plain, True) == b"before after one update after two"
    assert dec.handshakes[0].key_updates == [2, 0]


def test_malformed_hello_is_skipped_not_raised(tmp_path):
    pair = Pair(tmp_path, "1.2")
    pair.send(True, b"x")
    fc, first = pair.wire[0]
    bad = bytearray(first)
    bad[5 + 4 + 2 + 32] = 200  # ClientHello session_id length far past the end
    pair.wire[0] = (fc, bytes(bad))
    dec, plain, weird, _ = run(pair)
    assert app(plain, True) == b"" and dec.handshakes[0].client_random is None


def test_gap_stops_one_direction_only(tmp_path):
    pair = Pair(tmp_path, "1.2")
    pair.send(True, b"one ")
    pair.send(False, b"reply ")
    keylog = parse_keylog(_read(pair.keylog))
    plain, weird = [], []
    dec = ConnectionDecryptor(keylog, lambda hs, fc, ct, data, ts, fr: plain.append((hs, fc, ct, data)),
                              lambda ts, fr, kind, detail: weird.append((kind, detail)))
    for fc, data in pair.wire:
        dec.data(fc, data, 0.0, 1)
    dec.gap(True, 100, 1.0, 2)
    n = len(pair.wire)
    pair.send(True, b"lost ")
    pair.send(False, b"still read")
    for fc, data in pair.wire[n:]:
        dec.data(fc, data, 2.0, 3)
    assert app(plain, True) == b"one " and app(plain, False) == b"reply still read"
    assert [k for k, _ in weird] == ["decrypt_gap"] and "client" in weird[0][1]


def test_tls13_hello_retry_request(tmp_path):
    """A server that wants another key share answers with a HelloRetryRequest: the second
    ClientHello belongs to the same handshake, the real ServerHello follows (RFC 8446 §4.1.4)."""
    pair = Pair.__new__(Pair)
    cert = host_cert("decrypt.lab")
    (tmp_path / "c.crt").write_bytes(cert.cert_pem)
    (tmp_path / "c.key").write_bytes(cert.key_pem)
    pair.keylog = str(tmp_path / "keys.txt")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(tmp_path / "c.crt"), str(tmp_path / "c.key"))
    sctx.set_ecdh_curve("secp384r1")  # not the client's first key share (X25519): HelloRetryRequest
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    cctx.keylog_filename = pair.keylog
    for ctx in (sctx, cctx):
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    pair.ci, pair.co, pair.si, pair.so = (ssl.MemoryBIO() for _ in range(4))
    pair.c = cctx.wrap_bio(pair.ci, pair.co, server_side=False)
    pair.s = sctx.wrap_bio(pair.si, pair.so, server_side=True)
    pair.wire = []
    pair._handshake()
    pair.send(True, b"USER root\r\n")
    client = b"".join(d for fc, d in pair.wire if fc)
    hellos, pos = 0, 0
    while pos + 5 <= len(client):
        hellos += client[pos] == 22 and client[pos + 5] == 1
        pos += 5 + int.from_bytes(client[pos + 3:pos + 5], "big")
    assert hellos == 2  # the retry happened
    dec, plain, weird, certs = run(pair)
    assert weird == [] and app(plain, True) == b"USER root\r\n"
    assert len(dec.handshakes) == 1 and dec.handshakes[0].keys == "found" and certs
