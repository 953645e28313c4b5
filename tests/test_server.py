"""The lab authd server (``dissect.port902.lab.server``) against Python's own ``ssl`` client.

Proves the daemon before third-party tools use it: banners per persona, pre-TLS behaviour,
logins, the MKS hand-off with a second TLS handshake on the raw TCP stream (TLS #1 never
closed), NFC in clear and inside TLS #2 (classic, VDDK AIO and nfclib file transfers), SOAP
inside TLS #1, CONNECT_ARGV, robustness, and that its JSONL log says what really happened.
The client below drives OpenSSL through memory BIOs so it, too, can leave TLS #1 without
close_notify and start again on the raw socket (protocol.md §4.2, §5.3).
"""

import hashlib
import socket
import ssl
import struct
import threading
import time

import pytest

from dissect.port902.lab import nfc, rfb
from dissect.port902.lab.authd import BANNERS
from dissect.port902.lab.certs import host_cert

CERT = host_cert("localhost.localdomain")
TICKET = "52cf8c64-9343-7cb7-d151-1bfc481bb7d5"
TOKEN = "q2xK3nVbZ0a1Tg7w"
VMX = "/vmfs/volumes/56d5c29a-ac1ca31f-fd75-089e01d8b64c/web01/web01.vmx"
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class Tls:
    """Client side of one TLS session on ``conn``'s raw socket, fed one record at a time."""

    def __init__(self, conn: "Conn", version: str | None = None, min_version: str | None = None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE                 # authd clients pin the thumbprint instead (§3.2)
        if version:
            ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
        if min_version:
            ctx.minimum_version = VERSIONS[min_version]
        self.conn, self.plain = conn, bytearray()
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self._in, self._out, server_side=False)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._feed()
        self._flush()

    def _flush(self):
        data = self._out.read()
        if data:
            self.conn.sock.sendall(data)

    def _feed(self):
        head = self.conn.take(5)
        self._in.write(head + self.conn.take(int.from_bytes(head[3:5], "big")))

    @property
    def cert_der(self) -> bytes:
        return self.obj.getpeercert(binary_form=True)

    def send(self, data: bytes):
        self.obj.write(data)
        self._flush()

    def _fill(self):
        while True:
            try:
                self.plain += self.obj.read(65536)
                return
            except ssl.SSLWantReadError:
                self._feed()

    def take(self, n: int) -> bytes:
        while len(self.plain) < n:
            self._fill()
        out = bytes(self.plain[:n])
        del self.plain[:n]
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self.plain:
            self._fill()
        end = self.plain.index(b"\r\n") + 2
        return self.take(end)

    def cmd(self, text: str) -> str:
        self.send(text.encode() + b"\r\n")
        return self.line().decode().rstrip("\r\n")


OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while OPEN:
        OPEN.pop().close()


class Conn:
    """A raw TCP connection to the server with its own receive buffer (closed after each test)."""

    def __init__(self, server, timeout: float = 10.0):
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        OPEN.append(self.sock)
        self.buf = bytearray()

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed")
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed")
            self.buf += data
        return self.take(self.buf.index(b"\r\n") + 2)

    def cmd(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line().decode().rstrip("\r\n")

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def sha1(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha1(der).digest())


def login(tls, user: str, password: str) -> tuple[str, str]:
    return tls.cmd(f"USER {user}"), tls.cmd(f"PASS {password}")


# -- banners and pre-TLS behaviour -------------------------------------------------------------------

@pytest.mark.parametrize("persona,banner_id", [("esxi8", "B7"), ("esxi6", "B6"), ("esxi55", "B5"),
                                               ("workstation", "B8"), ("workstation912", "B10"), ("legacy", "B1")])
def test_banner_on_accept(authd_server, persona, banner_id):
    server = authd_server("--persona", persona)
    conn = Conn(server)
    assert conn.line() == BANNERS[banner_id].encode() + b"\r\n"
    conn.close()
    (rec,) = server.stop()
    assert rec["banner_id"] == banner_id and rec["persona"] == persona
    assert rec["bytes"]["s2c"] == len(BANNERS[banner_id]) + 2 and rec["bytes"]["c2s"] == 0


def test_ssl_required_plaintext_line_closes(authd_server):
    server = authd_server("--persona", "esxi8")
    conn = Conn(server)
    conn.line()
    conn.sock.sendall(b"USER root\r\n")
    assert conn.closed_by_server()
    assert conn.buf == b""                                # no reply at all (§11.1.2)
    (rec,) = server.stop()
    assert rec["end_reason"] == "pre_tls_plaintext" and rec["pre_tls"] == {"bytes": 11, "verb": "USER"}
    assert rec["tls"] == [] and rec["replies"] == []


def test_non_ssl_probe_gets_530(authd_server):
    """OpenVAS sends ``TEST\\r\\n\\r\\n``: a non-SSL authd answers each line with 530 (§2.3, §11.1.2)."""
    server = authd_server("--persona", "workstation912")
    conn = Conn(server)
    conn.line()
    conn.sock.sendall(b"TEST\r\n\r\n")
    assert conn.line() == conn.line() == b"530 Please login with USER and PASS.\r\n"
    conn.close()
    (rec,) = server.stop()
    assert rec["commands"] == ["TEST", ""] and rec["replies"] == [530, 530] and rec["login_attempts"] == 0


# -- logins ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_login_accept_reject_same_connection(authd_server, version):
    server = authd_server("--users", "root:vmware,admin:s3cret")
    conn = Conn(server)
    conn.line()
    tls = Tls(conn, version)
    assert tls.obj.version() == {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}[version]
    assert sha1(tls.cert_der) == CERT.sha1
    assert login(tls, "root", "wrong1") == ("331 Password required for root.", "530 Login incorrect.")
    assert login(tls, "admin", "vmware") == ("331 Password required for admin.", "530 Login incorrect.")
    assert login(tls, "admin", "s3cret") == ("331 Password required for admin.", "230 User admin logged in.")
    assert tls.cmd("PASS again") == "503 Login with USER first."
    conn.close()
    (rec,) = server.stop()
    assert rec["tls"] == [{"handshake": 1, "version": f"TLSv{version}", "cipher": tls.obj.cipher()[0], "error": None}]
    assert rec["commands"] == ["USER", "PASS", "USER", "PASS", "USER", "PASS", "PASS"]
    assert rec["replies"] == [331, 530, 331, 530, 331, 230, 503]
    assert rec["login_attempts"] == 3 and rec["logins_failed"] == 2
    assert [(x["user"], x["outcome"]) for x in rec["logins"]] == [("root", "rejected"), ("admin", "rejected"),
                                                                   ("admin", "accepted")]
    text = server.log_path.read_text()
    assert "wrong1" not in text and "s3cret" not in text and "vmware" not in text.replace("VMware", "")
    assert rec["feature"] == "NONE" and rec["handoff"] is None and rec["end_reason"] == "client_closed"


def test_non_ssl_login_in_clear(authd_server):
    server = authd_server("--persona", "workstation912", "--users", "root:vmware")
    conn = Conn(server)
    conn.line()
    assert conn.cmd("CONNECT /x.vmx mks") == "530 Please login with USER and PASS."
    assert conn.cmd("USER root") == "331 Password required for root."
    assert conn.cmd("PASS vmware") == "230 User root logged in."
    conn.close()
    (rec,) = server.stop()
    assert rec["tls"] == [] and rec["logins"] == [{"user": "root", "kind": "password", "outcome": "accepted"}]


def test_tls_limits(authd_server):
    server = authd_server("--tls-max", "1.2")
    conn = Conn(server)
    conn.line()
    with pytest.raises(ssl.SSLError):
        Tls(conn, min_version="1.3")
    conn.close()
    conn = Conn(server)
    conn.line()
    assert Tls(conn).obj.version() == "TLSv1.2"
    conn.close()
    first, second = sorted(server.stop(), key=lambda r: r["start"])
    assert first["end_reason"] == "tls_error" and first["tls"][0]["error"] and first["tls"][0]["version"] is None
    assert second["tls"][0]["version"] == "TLSv1.2"


def test_banner_and_thumbprint_commands(authd_server):
    server = authd_server()
    conn = Conn(server)
    conn.line()
    tls = Tls(conn)
    assert tls.cmd("BANNER ") == BANNERS["B7"]
    assert tls.cmd("THUMBPRINT PlainText") == f"200 {CERT.sha1}"
    assert tls.cmd("THUMBPRINT_SHA2 PlainText") == f"200 {CERT.sha256}"
    assert tls.cmd(f"THUMBPRINT_SHA2 {CERT.sha1}") == "501 Invalid arguments"
    assert tls.cmd("GLOBAL") == "530 Please login with USER and PASS."
    conn.close()
    (rec,) = server.stop()
    assert rec["replies"] == [220, 200, 200, 501, 530]


# -- MKS ---------------------------------------------------------------------------------------------

def mks_setup(server, version="1.3", token=TOKEN):
    conn = Conn(server)
    conn.line()
    tls1 = Tls(conn, version)
    assert login(tls1, TICKET, TICKET) == (f"331 Password required for {TICKET}.", f"230 User {TICKET} logged in.")
    assert tls1.cmd(f"THUMBPRINT {token}") == f"200 {CERT.sha1}"
    assert tls1.cmd(f"CONNECT {VMX} mks") == f"200 Connect {VMX}"
    assert not tls1.plain and not conn.buf                # nothing after the last record of TLS #1
    return conn, tls1


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_mks_handoff_second_handshake_on_raw_stream(authd_server, version):
    server = authd_server()
    conn, tls1 = mks_setup(server, version)
    tls2 = Tls(conn, version)                             # a NEW ClientHello on the raw socket
    assert sha1(tls2.cert_der) == CERT.sha1
    tls2.send(TOKEN.encode())
    width, height = struct.unpack("!HH", tls2.take(4))  # ServerInit first (§4.3)
    tls2.take(16)
    name = tls2.take(struct.unpack("!I", tls2.take(4))[0])
    assert (width, height, name) == (1024, 768, b"web01")
    tls2.send(rfb.set_pixel_format() + rfb.set_encodings() + rfb.update_request(False, 0, 0, width, height))
    kind, rects = struct.unpack("!BxH", tls2.take(4))
    assert kind == rfb.FB_UPDATE and rects == 1
    x, y, w, h, encoding = struct.unpack("!HHHHi", tls2.take(12))
    assert (x, y, w, h, encoding) == (0, 0, width, height, rfb.ZRLE)
    tls2.take(struct.unpack("!I", tls2.take(4))[0])
    tls2.send(rfb.update_request(True, 0, 0, width, height) + rfb.key_event(True, ord("a")))
    assert struct.unpack("!BxH", tls2.take(4))[0] == rfb.FB_UPDATE   # the key press changed the screen
    conn.close()
    (rec,) = server.stop()
    assert [t["version"] for t in rec["tls"]] == [f"TLSv{version}"] * 2
    assert rec["feature"] == "MKS" and rec["handoff"] == "mks"
    assert rec["commands"] == ["USER", "PASS", "THUMBPRINT", "CONNECT"] and rec["replies"] == [331, 230, 200, 200]
    assert rec["logins"] == [{"user": "<ticket>", "kind": "ticket", "outcome": "accepted"}]
    assert rec["rfb_messages"] == {"0": 1, "2": 1, "3": 2, "4": 1}
    text = server.log_path.read_text()
    assert TICKET not in text and TOKEN not in text


def test_mks_in_clear_on_a_non_ssl_daemon(authd_server):
    """Workstation 912 (no SSL): the console follows ``200 Connect`` on the same clear stream."""
    server = authd_server("--persona", "workstation912")
    conn = Conn(server)
    conn.line()
    assert login(conn, TICKET, TICKET)[1] == f"230 User {TICKET} logged in."
    assert conn.cmd(f"CONNECT {VMX} mks") == f"200 Connect {VMX}"
    assert struct.unpack("!HH", conn.take(4)) == (1024, 768)      # ServerInit, no token without THUMBPRINT
    conn.close()
    (rec,) = server.stop()
    assert rec["tls"] == [] and rec["feature"] == "MKS" and rec["handoff"] == "mks"


def test_mks_wrong_token_closes(authd_server):
    server = authd_server()
    conn, _ = mks_setup(server)
    tls2 = Tls(conn)
    tls2.send(b"X" * 16)
    with pytest.raises((EOFError, ssl.SSLError, ConnectionResetError)):
        tls2.take(1)
    (rec,) = server.stop()
    assert rec["end_reason"] == "token_mismatch" and rec["feature"] == "NONE"


def test_mks_needs_login(authd_server):
    server = authd_server()
    conn = Conn(server)
    conn.line()
    tls = Tls(conn)
    assert login(tls, TICKET, "52cf8c64-0000-0000-0000-1bfc481bb7d5")[1] == "530 Login incorrect."
    assert tls.cmd(f"CONNECT {VMX} mks") == "530 Please login with USER and PASS."
    conn.close()
    (rec,) = server.stop()
    assert rec["handoff"] is None and rec["logins"][0]["outcome"] == "rejected"


def test_mks_relay_to_vnc_server(authd_server):
    """``--vnc``: the console stream after the token goes to a real TCP server and back."""
    upstream = socket.create_server(("127.0.0.1", 0))
    got = []

    def vnc():
        peer, _ = upstream.accept()
        with peer:
            peer.sendall(b"RFB 003.008\n")
            got.append(peer.recv(12))
            peer.sendall(b"\x01\x01")                    # one security type: None

    thread = threading.Thread(target=vnc, daemon=True)
    thread.start()
    server = authd_server("--vnc", f"127.0.0.1:{upstream.getsockname()[1]}")
    conn, _ = mks_setup(server)
    tls2 = Tls(conn)
    tls2.send(TOKEN.encode())
    assert tls2.take(12) == b"RFB 003.008\n"
    tls2.send(b"RFB 003.008\n")
    assert tls2.take(2) == b"\x01\x01"
    thread.join(5)
    upstream.close()
    assert got == [b"RFB 003.008\n"]
    (rec,) = server.wait_records(1)
    assert rec["feature"] == "MKS" and rec["console_end"] == "vnc server closed"
    assert rec["console_c2s"] == 12 and rec["console_s2c"] == 14


# -- NFC ---------------------------------------------------------------------------------------------

def nfc_setup(server, service: str, session: str = "52cdebc5-b7ee-359a-1dec-76f0bc105ac5"):
    conn = Conn(server)
    conn.line()
    tls1 = Tls(conn)
    tls1.send(f"SESSION {session}\r\nBANNER \r\n".encode())   # one flight, as VDDK sends it (§5.3 a)
    assert tls1.line().decode().rstrip() == BANNERS["B7"]
    assert tls1.cmd("THUMBPRINT_SHA2 PlainText") == f"200 {CERT.sha256}"
    return conn, tls1, tls1.cmd(f"PROXY {service}")


class RawNfc:
    """NFC on the raw socket after ``200 Connect ha-nfc``."""

    def __init__(self, conn):
        self.conn = conn

    def send(self, data):
        self.conn.sock.sendall(data)

    def take(self, n):
        return self.conn.take(n)


def test_nfc_clear_vddk_read(authd_server, tmp_path):
    root = tmp_path / "ds"
    (root / "web01").mkdir(parents=True)
    disk = bytes(range(256)) * 600                       # 153600 bytes: three AIO fragments
    (root / "web01" / "web01-flat.vmdk").write_bytes(disk)
    server = authd_server("--sessions", "52cdebc5-b7ee-359a-1dec-76f0bc105ac5", "--nfc-root", root)
    conn, tls1, reply = nfc_setup(server, "vpxa-nfc")
    assert reply == "200 Connect ha-nfc"
    ch = RawNfc(conn)                                     # cleartext NFC on the same TCP stream
    ch.send(nfc.message(nfc.CLIENTRANDOM, b"PlainText") + nfc.message(nfc.FILE_COPY))
    assert struct.unpack("<I", ch.take(264)[:4])[0] == nfc.FILEOP_STATUS
    ch.send(nfc.message(nfc.VERSION, struct.pack("<I", 11)))
    assert struct.unpack("<II", ch.take(264)[:8]) == (nfc.VERSION, 11)
    ch.send(nfc.message(nfc.OPID, struct.pack("<II", 4, 7)) + b"vddknbdmode" + nfc.message(nfc.FEATURES, b"\3\0\0\0")
            + nfc.message(nfc.READY))
    assert struct.unpack("<I", ch.take(264)[:4])[0] == nfc.READY

    def call(kind, op, payload, extra=b""):
        ch.send(nfc.aio(kind, op, payload, extra))
        magic, rkind, size, rop = struct.unpack("<IIII", ch.take(16))
        assert (magic, rkind, rop) == (nfc.AIO_MAGIC, kind, op)
        return ch.take(size)

    call(nfc.AIO_OPEN_SESSION, 0, bytes(16))
    path = b"/vmfs/volumes/ds1/web01/web01-flat.vmdk"
    reply = call(nfc.AIO_OPEN_FILE, 1, struct.pack("<I12xII36x", len(path), nfc.FILE_TYPE_DISK, nfc.OPEN_READ_ONLY),
                 path)
    handle = struct.unpack_from("<Q", reply, 8)[0]
    assert struct.unpack_from("<I", reply, 36)[0] == 512
    ch.send(nfc.aio(nfc.AIO_IO, 2, nfc.io_request(handle, 512, len(disk) - 512)))
    data = b""
    while len(data) < len(disk) - 512:
        _, kind, size, op = struct.unpack("<IIII", ch.take(16))
        frag = ch.take(size)
        data += ch.take(struct.unpack_from("<I", frag, 32)[0])
    assert data == disk[512:]
    call(nfc.AIO_CLOSE_FILE, 3, struct.pack("<Q", handle))
    call(nfc.AIO_CLOSE_SESSION, 4, bytes(4))
    ch.send(nfc.message(nfc.SESSION_COMPLETE))
    assert struct.unpack("<I", ch.take(264)[:4])[0] == nfc.SESSION_COMPLETE
    assert conn.closed_by_server()
    (rec,) = server.stop()
    assert rec["feature"] == "NFC" and rec["handoff"] == "nfc" and rec["handoff_target"] == "ha-nfc"
    assert rec["session"] == "accepted" and len(rec["tls"]) == 1
    assert rec["commands"] == ["SESSION", "BANNER", "THUMBPRINT_SHA2", "PROXY"] and rec["replies"] == [220, 200, 200]
    assert rec["nfc_aio"] == {"2": 1, "4": 1, "7": 1, "5": 1, "3": 1} and rec["nfc_data_bytes"] == len(disk) - 512
    assert rec["end_reason"] == "server_closed"


def test_nfcssl_upload_and_download(authd_server, tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    server = authd_server("--any-session", "--nfc-root", root)
    conn, _, reply = nfc_setup(server, "nfcssl")
    assert reply == "200 Connect ha-nfcssl"
    tls2 = Tls(conn)                                      # NFC inside TLS #2
    content = bytes(range(251)) * 2000                    # two FILE_DATA chunks
    tls2.send(nfc.message(nfc.CLIENTRANDOM, TOKEN.encode()) + nfc.file_put("/iso/tools.iso", len(content)))
    tls2.send(nfc.file_data(content[:nfc.MAX_XFER]) + nfc.file_data(content[nfc.MAX_XFER:]) + nfc.file_data(b""))
    assert struct.unpack("<I", tls2.take(264)[:4])[0] == nfc.PUTFILE_DONE
    assert (root / "iso" / "tools.iso").read_bytes() == content
    tls2.send(nfc.message(2, struct.pack("<III", 0, 15, 0)) + b"/iso/tools.iso\0")
    described = tls2.take(264)
    assert struct.unpack_from("<IIIIQ", described) [0] == nfc.FILE_PUT
    assert struct.unpack_from("<Q", described, 16)[0] == len(content)
    assert tls2.take(15) == b"/iso/tools.iso\0"
    got = b""
    while True:
        assert struct.unpack("<I", tls2.take(264)[:4])[0] == nfc.FILE_DATA
        magic, size = struct.unpack("<II", tls2.take(8))
        assert magic == nfc.FILE_MAGIC
        if not size:
            break
        got += tls2.take(size)
    assert got == content
    tls2.send(nfc.message(2, struct.pack("<III", 0, 9, 0)) + b"/missing\0")
    error = tls2.take(264)
    assert struct.unpack_from("<I", error)[0] == 20
    assert b"not found" in tls2.take(struct.unpack_from("<I", error, 12)[0])
    conn.close()
    (rec,) = server.stop()
    assert rec["feature"] == "NFC" and rec["handoff"] == "nfcssl" and len(rec["tls"]) == 2
    assert [f["op"] for f in rec["nfc_files"]] == ["put", "get", "get"]


def test_proxy_needs_a_valid_session(authd_server):
    server = authd_server("--sessions", "52cdebc5-b7ee-359a-1dec-76f0bc105ac5")
    conn, _, reply = nfc_setup(server, "vpxa-nfc", session="52000000-0000-0000-0000-000000000000")
    assert reply == "530 Please login with USER and PASS."
    conn.close()
    (rec,) = server.stop()
    assert rec["session"] == "rejected" and rec["feature"] == "NONE" and rec["handoff"] is None


# -- SOAP and VMXARGS --------------------------------------------------------------------------------

def test_soap_inside_tls1(authd_server):
    from dissect.port902.lab import soap

    server = authd_server()
    conn = Conn(server)
    conn.line()
    tls = Tls(conn)
    for body, answer in (("<RetrieveServiceContent xmlns=\"urn:vim25\"><_this>ServiceInstance</_this>"
                          "</RetrieveServiceContent>", b"<RetrieveServiceContentResponse"),
                         ("<CurrentTime xmlns=\"urn:vim25\"/>", b"<CurrentTimeResponse")):
        tls.send(soap.request("esx01", body))
        head = tls.line()
        assert head == b"HTTP/1.1 200 OK\r\n"
        headers = {}
        while (h := tls.line()) != b"\r\n":
            k, _, v = h.decode().partition(":")
            headers[k.lower()] = v.strip()
        payload = tls.take(int(headers["content-length"]))
        assert answer in payload and payload.startswith(b"<?xml")
    conn.close()
    (rec,) = server.stop()
    assert rec["feature"] == "SOAP" and rec["soap_methods"] == ["RetrieveServiceContent", "CurrentTime"]


def test_connect_argv(authd_server):
    server = authd_server("--users", "root:vmware")
    conn = Conn(server)
    conn.line()
    tls = Tls(conn)
    assert tls.cmd(f"CONNECT_ARGV {VMX} -s a=b") == "530 Please login with USER and PASS."
    login(tls, "root", "vmware")
    assert tls.cmd(f"CONNECT_ARGV {VMX} -s a=b") == f"200 Connect {VMX}"
    assert tls.cmd("BANNER ") == BANNERS["B7"]           # no hand-off: the dialogue goes on
    conn.close()
    (rec,) = server.stop()
    assert rec["feature"] == "VMXARGS" and rec["handoff"] is None


# -- robustness --------------------------------------------------------------------------------------

def test_hostile_clients_do_not_hurt_the_daemon(authd_server):
    server = authd_server("--users", "root:vmware")
    hostile = [
        b"\x16\x03\x01\x00\x05hello",                    # a "handshake record" of nonsense
        b"\x16\x03\x01\xff\xff" + b"A" * 100,            # oversized record length
        b"\x16\x03",                                      # half a header, then hang up
        b"\x80\x2e\x01\x03\x01",                          # SSLv2-style hello
        bytes(range(256)),
    ]
    for data in hostile:
        conn = Conn(server)
        conn.line()
        conn.sock.sendall(data)
        conn.close()
    conn = Conn(server)                                  # hang up right after the ClientHello
    conn.line()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO())
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    conn.sock.sendall(out.read())
    conn.close()
    conn = Conn(server)                                  # a 10 kB line inside TLS
    conn.line()
    tls = Tls(conn)
    tls.send(b"USER " + b"x" * 10000)
    with pytest.raises((EOFError, ssl.SSLError, ConnectionResetError)):
        tls.line()
    conn.close()
    conn = Conn(server)                                  # still serving
    conn.line()
    assert login(Tls(conn), "root", "vmware")[1] == "230 User root logged in."
    conn.close()
    recs = server.stop()
    assert len(recs) == len(hostile) + 3
    assert not [r for r in recs if r["end_reason"] == "error"]


def test_many_concurrent_connections(authd_server):
    server = authd_server("--users", "root:vmware")
    results, errors = [], []

    def one(i):
        try:
            conn = Conn(server)
            conn.line()
            tls = Tls(conn, "1.3" if i % 2 else "1.2")
            results.append(login(tls, "root", "vmware" if i % 3 else "nope")[1])
            conn.close()
        except Exception as exc:                          # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(results) == sorted(["230 User root logged in."] * 26 + ["530 Login incorrect."] * 14)
    recs = server.stop()
    assert len(recs) == 40 and len({r["client_port"] for r in recs}) == 40
    assert sum(r["logins_failed"] for r in recs) == 14


def test_shutdown_logs_live_connections_and_ipv6(authd_server):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = authd_server("--listen", "[::1]:0")
    assert server.host == "::1"
    conn = Conn(server)
    conn.line()
    Tls(conn)
    (rec,) = server.stop()                               # the client is still connected
    assert rec["end_reason"] == "shutdown" and rec["client_ip"] == "::1"
    conn.close()


def test_stop_asks_whether_the_client_closed_without_reading():
    """Server.stop() runs in the signal handler beside the connection thread: it must neither take
    the client's bytes nor wait for more (a peek that lost that race blocked for the idle timeout)."""
    from dissect.port902.lab.server import _close_queued
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    try:
        served.settimeout(120)                            # as the lab's connections are
        assert _close_queued(served) is False             # nothing sent, still open
        client.sendall(b"USER root\r\n")
        time.sleep(0.05)
        assert _close_queued(served) is False             # bytes waiting, no FIN
        client.shutdown(socket.SHUT_WR)
        time.sleep(0.05)
        assert _close_queued(served) is False             # FIN behind unread bytes: not yet closed
        assert served.recv(64) == b"USER root\r\n"        # and nothing was consumed
        started = time.monotonic()
        assert _close_queued(served) is True              # FIN and nothing left
        assert time.monotonic() - started < 1
        served.close()
        assert _close_queued(served) is None              # gone: leave the record alone
    finally:
        for s in (listener, client, served):
            s.close()
