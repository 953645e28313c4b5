"""What the lab authd server runs after a hand-off (or instead of authd lines): NFC, MKS, SOAP.

Why: a real vmware-authd hands the TCP connection to the service a client asked for, and a
dissector has to be proven on traffic that a real server process produced in reply to real
clients. Each service here answers over a channel of :mod:`.rawtls` (TLS #2 or the raw stream):

* :func:`serve_nfc` — the NFC service behind ``PROXY vpxa-nfc|nfc`` (cleartext) and
  ``PROXY vpxa-nfcssl|nfcssl`` (inside TLS #2): classic 264-byte messages (protocol.md §5.4:
  CLIENTRANDOM, FILE_PUT + FILE_DATA ↔ PUTFILE_DONE, FILE_GET → FILE_PUT + FILE_DATA stream,
  PING, SESSION_COMPLETE ↔), the VDDK 8 handshake (43, 33 → 36, 51 ↔ 51, 54 + names, 55,
  52 ↔ 52) and AIO frames (§5.5: OPEN_SESSION, SET_SOCK_OPTS, SET_RES_POOL, OPEN_FILE,
  DDB_GET, IO reads in ≤ 64 KiB fragments and fragmented writes, CLOSE_FILE, CLOSE_SESSION).
  Files live under ``--nfc-root`` (the datastore: ``/vmfs/volumes/<ds>/x`` and ``[ds] x`` are
  ``<root>/x``); without one a disk reads as zeros and uploads are discarded.
* :func:`serve_console` — MKS after ``CONNECT <vmx> mks``, TLS #2 and the 16-byte token
  (§4.2, §4.3): a built-in RFB responder (ServerInit first, no version/security exchange —
  the lab's reading of §4.3) or a byte relay to a real VNC server.
* :func:`serve_soap` — the lab's SOAP-over-902 model (§6; see :mod:`.soap`): HTTP/1.1 POSTs of
  vim25 envelopes inside TLS #1, answered with SOAP envelopes, keep-alive.

Replies whose layout no source gives (SET_RES_POOL, CLOSE_*, DDB_GET, PING, NFC_ERROR codes)
follow the lab's model in :mod:`.nfc`: the request's payload size echoed with zeros.
"""

from __future__ import annotations

import random
import re
import select
import socket
import struct
from pathlib import Path, PurePosixPath

from . import nfc, rfb, soap
from .rawtls import ProtocolViolation, TlsChannel

NFC_ERROR, NFC_PING, FILE_GET = 20, 8, 2
MAX_NAME = 4096                      # longest path / DDB key / op-id name accepted
MAX_CHUNK = 4 << 20                  # largest FILE_DATA / AIO fragment accepted
MAX_READ = 64 << 20                  # largest single AIO read served
VIRTUAL_DISK = 1 << 30               # size a disk reads as without --nfc-root
_OPEN_READ_ONLY = nfc.OPEN_READ_ONLY


def nfc_error(code: int, text: str) -> bytes:
    """NFC_ERROR (20): errorType @4, errorCode @8, msgLen @12, then the NUL-terminated text."""
    raw = text.encode() + b"\0"
    return nfc.message(NFC_ERROR, struct.pack("<III", 1, code, len(raw))) + raw


_DATASTORE = re.compile(r"^(?:/vmfs/volumes/[^/]+/|\[[^\]]*\]\s*)")


def datastore_file(root: Path, path: str) -> Path:
    """``path`` as the client names it, inside ``root`` (the datastore): ``/vmfs/volumes/<ds>/a/b``
    and ``[ds] a/b`` both map to ``root/a/b``; ``..`` never leaves ``root``."""
    path = _DATASTORE.sub("", path.replace("\\", "/").strip("\0"))
    parts = [p for p in PurePosixPath(path).parts if p not in ("/", "..", ".", "")]
    return root.joinpath(*parts) if parts else root / "unnamed"


class NfcService:
    """One NFC session; ``stats`` collects what the server log reports (types, bytes, paths)."""

    def __init__(self, ch, root: str | None, stats: dict):
        self.ch, self.root = ch, Path(root) if root else None
        self.stats = stats
        stats.setdefault("nfc_messages", {})
        stats.setdefault("nfc_aio", {})
        stats.setdefault("nfc_files", [])
        stats.setdefault("nfc_data_bytes", 0)
        self.handles: dict[int, tuple[Path | None, bool]] = {}
        self.next_handle = 0x10001

    # -- helpers -----------------------------------------------------------------------------------

    def _count(self, table: str, kind: int) -> None:
        key = str(kind)
        self.stats[table][key] = self.stats[table].get(key, 0) + 1

    def _name(self, n: int) -> bytes:
        if n > MAX_NAME:
            raise ProtocolViolation(f"NFC name of {n} bytes")
        return self.ch.take(n)

    def _file(self, path: str) -> Path | None:
        return datastore_file(self.root, path) if self.root else None

    # -- main loop ---------------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer messages until SESSION_COMPLETE, an unsupported message or the peer's close."""
        while True:
            head = self.ch.take(4)
            if struct.unpack("<I", head)[0] == nfc.AIO_MAGIC:
                self._aio(head + self.ch.take(12))
                continue
            msg = head + self.ch.take(nfc.MSG_SIZE - 4)
            kind = struct.unpack("<I", head)[0]
            self._count("nfc_messages", kind)
            if not self._classic(kind, msg):
                return

    def _classic(self, kind: int, msg: bytes) -> bool:
        ch = self.ch
        if kind == nfc.CLIENTRANDOM or kind == nfc.FEATURES:
            pass
        elif kind == nfc.FILE_COPY:                               # VDDK "session params" -> 36
            ch.send(nfc.message(nfc.FILEOP_STATUS, b"\0" * 12 + struct.pack("<I", 1)))
        elif kind == nfc.VERSION:
            ch.send(nfc.message(nfc.VERSION, struct.pack("<I", nfc.ESXI8_NFC_VERSION)))
        elif kind == nfc.OPID:
            name_len, op_len = struct.unpack("<II", msg[4:12])
            self._name(name_len + op_len)
        elif kind == nfc.READY:
            ch.send(nfc.message(nfc.READY))
        elif kind == NFC_PING:
            ch.send(nfc.message(NFC_PING))
        elif kind == nfc.FILE_PUT:
            self._file_put(msg)
        elif kind == nfc.FILE_DATA:                               # data without a FILE_PUT: drain it
            self._file_data(None)
        elif kind == FILE_GET:
            self._file_get(msg)
        elif kind == NFC_ERROR:
            self._name(struct.unpack("<I", msg[12:16])[0])
        elif kind == nfc.SESSION_COMPLETE:
            ch.send(nfc.message(nfc.SESSION_COMPLETE))
            return False
        else:
            ch.send(nfc_error(4, f"unsupported NFC message type {kind}"))
            return False
        return True

    def _file_data(self, out) -> int:
        """One FILE_DATA payload ({0xABCDEFAB, len} + data) after its 264 bytes; returns len."""
        magic, size = struct.unpack("<II", self.ch.take(8))
        if magic != nfc.FILE_MAGIC or size > MAX_CHUNK:
            raise ProtocolViolation(f"FILE_DATA header {magic:#x} / {size}")
        data = self.ch.take(size)
        self.stats["nfc_data_bytes"] += size
        if out is not None:
            out.write(data)
        return size

    def _file_put(self, msg: bytes) -> None:
        _kind, _flags, path_len, _size = struct.unpack("<IIIQ", msg[4:24])
        path = self._name(path_len).rstrip(b"\0").decode("utf-8", "replace")
        self.stats["nfc_files"].append({"op": "put", "path": path})
        target = self._file(path)
        out = None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = target.open("wb")
        try:
            while True:
                head = self.ch.take(nfc.MSG_SIZE)
                kind = struct.unpack("<I", head[:4])[0]
                self._count("nfc_messages", kind)
                if kind != nfc.FILE_DATA:
                    raise ProtocolViolation(f"NFC type {kind} inside a FILE_PUT transfer")
                if self._file_data(out) == 0:
                    break
        finally:
            if out is not None:
                out.close()
        self.ch.send(nfc.message(nfc.PUTFILE_DONE))

    def _file_get(self, msg: bytes) -> None:
        kind, path_len, _flags = struct.unpack("<III", msg[4:16])
        raw = self._name(path_len)
        path = raw.rstrip(b"\0").decode("utf-8", "replace")
        self.stats["nfc_files"].append({"op": "get", "path": path})
        target = self._file(path)
        if target is None or not target.is_file():
            self.ch.send(nfc_error(2, f"File {path} not found"))
            return
        size = target.stat().st_size
        described = struct.pack("<IIIQQIIBI", kind, 0, len(raw), size, size, 0, 0, 0, 0)
        self.ch.send(nfc.message(nfc.FILE_PUT, described) + raw)
        with target.open("rb") as handle:
            while chunk := handle.read(nfc.MAX_XFER):
                self.ch.send(nfc.file_data(chunk))
                self.stats["nfc_data_bytes"] += len(chunk)
        self.ch.send(nfc.file_data(b""))

    # -- AIO (VDDK 8) --------------------------------------------------------------------------------

    def _aio(self, header: bytes) -> None:
        _magic, kind, size, op = struct.unpack("<IIII", header)
        if size > MAX_CHUNK:
            raise ProtocolViolation(f"AIO payload of {size} bytes")
        payload = self.ch.take(size)
        self._count("nfc_aio", kind)
        send = self.ch.send
        if kind == nfc.AIO_OPEN_SESSION:
            send(nfc.aio(kind, op, bytes(16)))
        elif kind == nfc.AIO_SET_SOCK_OPTS:
            send(nfc.aio(kind, op, struct.pack("<III", 1 << 20, 1 << 20, 1)))
        elif kind == nfc.AIO_OPEN_FILE and len(payload) >= 24:
            path_len, flags = struct.unpack_from("<I", payload)[0], struct.unpack_from("<I", payload, 20)[0]
            path = self._name(path_len).decode("utf-8", "replace")
            self.stats["nfc_files"].append({"op": "open", "path": path})
            target = self._file(path)
            if target is not None and flags == _OPEN_READ_ONLY and not target.is_file():
                text = f"Failed to open {path}".encode()
                send(nfc.aio(nfc.AIO_ERROR, op, struct.pack("<IIII", 2, 0, len(text), 0), text))
                return
            handle, self.next_handle = self.next_handle, self.next_handle + 1
            self.handles[handle] = (target, flags != _OPEN_READ_ONLY)
            send(nfc.aio(kind, op, struct.pack("<8xQII12xI20x", handle, nfc.FILE_TYPE_DISK, flags, nfc.SECTOR)))
        elif kind == nfc.AIO_DDB_GET and len(payload) >= 12:
            self._name(struct.unpack_from("<I", payload, 8)[0])
            send(nfc.aio(kind, op, bytes(16)))
        elif kind == nfc.AIO_IO and len(payload) == 44:
            self._aio_io(op, payload)
        elif kind == nfc.AIO_CLOSE_FILE and len(payload) >= 8:
            self.handles.pop(struct.unpack_from("<Q", payload)[0], None)
            send(nfc.aio(kind, op, bytes(8)))
        elif kind in (nfc.AIO_SET_RES_POOL, nfc.AIO_CLOSE_SESSION, 10):
            send(nfc.aio(kind, op, bytes(len(payload))))
        else:
            text = f"unsupported AIO message type {kind}".encode()
            send(nfc.aio(nfc.AIO_ERROR, op, struct.pack("<IIII", 4, 0, len(text), 0), text))

    def _aio_io(self, op: int, payload: bytes) -> None:
        handle, opcode, offset, total, frag_off, frag_len, extra, _ = struct.unpack("<QQQIIIII", payload)
        target, _writable = self.handles.get(handle, (None, False))
        if opcode & 0xFFFFFFFF == 1:                               # read: fragments of <= 64 KiB
            if total > MAX_READ:
                raise ProtocolViolation(f"AIO read of {total} bytes")
            data = b""
            if target is not None and target.is_file():
                with target.open("rb") as f:
                    f.seek(offset)
                    data = f.read(total)
            data += bytes(total - len(data))
            for frag in range(0, max(total, 1), nfc.AIO_FRAGMENT):
                piece = data[frag: frag + nfc.AIO_FRAGMENT]
                self.ch.send(nfc.aio(nfc.AIO_IO, op, nfc.io_fragment(handle, offset, total, frag, piece), piece))
            self.stats["nfc_data_bytes"] += total
            return
        if extra > MAX_CHUNK:
            raise ProtocolViolation(f"AIO write fragment of {extra} bytes")
        data = self.ch.take(extra)
        self.stats["nfc_data_bytes"] += len(data)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("r+b" if target.exists() else "wb") as f:
                f.seek(offset + frag_off)
                f.write(data)
        if frag_off + frag_len >= total:                           # last fragment: one 44-byte ack
            self.ch.send(nfc.aio(nfc.AIO_IO, op, struct.pack("<QQQIIIII", handle, 0, offset, total, 0, total, total, 0)))


def serve_nfc(ch, root: str | None, stats: dict) -> None:
    """Run the NFC service on ``ch`` (see :class:`NfcService`)."""
    NfcService(ch, root, stats).serve()


# -- MKS console -------------------------------------------------------------------------------------

def _pump(ch: TlsChannel) -> bytes:
    """Decrypt every complete TLS record already in the wire buffer (never blocks on the socket)."""
    out = bytes(ch.plain)
    ch.plain.clear()
    wire = ch.wire
    while len(wire.buf) >= 5 and len(wire.buf) >= 5 + int.from_bytes(wire.buf[3:5], "big"):
        ch.fill()
        out += bytes(ch.plain)
        ch.plain.clear()
    return out


def relay_vnc(ch: TlsChannel, address: tuple[str, int], stats: dict, timeout: float) -> None:
    """Relay the decrypted console stream to a real VNC server and back, until either side closes."""
    upstream = socket.create_connection(address, timeout=10)
    try:
        client_sock = ch.wire.sock
        pending = _pump(ch)
        if pending:
            upstream.sendall(pending)
        while True:
            ready, _, _ = select.select([client_sock, upstream], [], [], timeout)
            if not ready:
                stats["console_end"] = "idle"
                return
            if client_sock in ready:
                ch.wire.recv_more()
                data = _pump(ch)
                if data:
                    upstream.sendall(data)
                    stats["console_c2s"] = stats.get("console_c2s", 0) + len(data)
            if upstream in ready:
                data = upstream.recv(65536)
                if not data:
                    stats["console_end"] = "vnc server closed"
                    return
                ch.send(data)
                stats["console_s2c"] = stats.get("console_s2c", 0) + len(data)
    finally:
        upstream.close()


def builtin_console(ch, vm_name: str, stats: dict) -> None:
    """A small RFB responder: ServerInit, then updates answering the client's requests.

    Non-incremental requests get a full-screen update; incremental ones are answered when a key
    or pointer event changed the screen (as a VNC server answers only changes).
    """
    screen = rfb.Screen(random.Random(vm_name), 1024, 768, name=vm_name or "vm")
    ch.send(screen.server_init())
    waiting = False
    dirty: tuple[int, int, int, int, float] | None = None
    counts = stats.setdefault("rfb_messages", {})
    while True:
        kind = ch.take(1)[0]
        counts[str(kind)] = counts.get(str(kind), 0) + 1
        if kind == rfb.SET_PIXEL_FORMAT:
            ch.take(19)
        elif kind == rfb.SET_ENCODINGS:
            (count,) = struct.unpack("!xH", ch.take(3))
            ch.take(4 * count)
        elif kind == rfb.FB_UPDATE_REQUEST:
            incremental, x, y, w, h = struct.unpack("!BHHHH", ch.take(9))
            if not incremental:
                ch.send(screen.update([(x, y, max(1, w), max(1, h), 0.25)]))
                waiting = False
            elif dirty:
                ch.send(screen.update([dirty]))
                dirty, waiting = None, False
            else:
                waiting = True
        elif kind in (rfb.KEY_EVENT, rfb.POINTER_EVENT):
            body = ch.take(7 if kind == rfb.KEY_EVENT else 5)
            if kind == rfb.POINTER_EVENT:
                _, px, py = struct.unpack("!BHH", body)
                dirty = (min(px, screen.width - 1), min(py, screen.height - 1), 32, 32, 0.5)
            else:
                dirty = (*screen.random_rect(8, 16), 8, 16, 1.0)
            if waiting:
                ch.send(screen.update([dirty]))
                dirty, waiting = None, False
        elif kind == 6:                                           # ClientCutText
            (length,) = struct.unpack("!3xI", ch.take(7))
            if length > MAX_CHUNK:
                raise ProtocolViolation(f"ClientCutText of {length} bytes")
            ch.take(length)
        else:
            raise ProtocolViolation(f"RFB client message type {kind}")


def serve_console(ch, vnc: tuple[str, int] | None, vm_name: str, stats: dict, timeout: float) -> None:
    """The console after the token: relay to ``vnc`` when given, else :func:`builtin_console`."""
    if vnc:
        relay_vnc(ch, vnc, stats, timeout)
    else:
        builtin_console(ch, vm_name, stats)


# -- SOAP over TLS #1 (lab model) ----------------------------------------------------------------------

_HTTP_REQUEST = re.compile(rb"^(GET|POST|HEAD|PUT|OPTIONS|DELETE) (\S+) HTTP/1\.[01]\r?\n$")
_BODY_METHOD = re.compile(rb"<(?:\w+:)?Body[^>]*>\s*<(?:\w+:)?(\w+)")
_RESPONSES: dict[str, bytes] = {}


def is_http_request(line: bytes) -> bool:
    """Whether an authd line is an HTTP request line (the client speaks HTTP inside TLS #1)."""
    return bool(_HTTP_REQUEST.match(line))


def _soap_reply(method: str) -> bytes:
    if not _RESPONSES:
        for name, request, response in soap.session(random.Random(902), "localhost.localdomain", "root"):
            match = _BODY_METHOD.search(request)
            _RESPONSES[match.group(1).decode() if match else name] = response
    return _RESPONSES.get(method) or soap.response(f"<{method}Response {soap.URN}></{method}Response>")


def serve_soap(ch, first_line: bytes, stats: dict) -> None:
    """Answer HTTP/1.1 requests starting with ``first_line`` until the client closes.

    POSTs carrying a SOAP envelope get the matching vim25 response (``stats['soap_methods']``);
    any other request gets ``404`` (an HTTP probe, not SOAP).
    """
    line = first_line
    methods = stats.setdefault("soap_methods", [])
    while True:
        match = _HTTP_REQUEST.match(line)
        if not match:
            ch.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        headers: dict[str, str] = {}
        for _ in range(100):
            header = ch.read_line()
            if header in (b"\r\n", b"\n"):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ProtocolViolation("more than 100 HTTP header lines")
        length = int(headers.get("content-length", "0") or 0) if headers.get("content-length", "0").isdigit() else 0
        if length > MAX_CHUNK:
            raise ProtocolViolation(f"HTTP body of {length} bytes")
        body = ch.take(length) if length else b""
        found = _BODY_METHOD.search(body)
        if match.group(1) == b"POST" and found:
            method = found.group(1).decode()
            methods.append(method)
            stats["feature"] = "SOAP"
            ch.send(_soap_reply(method))
        else:
            stats["http_probes"] = stats.get("http_probes", 0) + 1
            ch.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        if headers.get("connection", "").lower() == "close":
            return
        line = ch.read_line()
