"""One direction's NFC bytes -> events, incrementally: framing, FILE_DATA skipping, resynchronisation.

Bulk data (FILE_DATA, AIO I/O fragments) is counted and skipped, never buffered, so a multi-GB
copy costs O(1) memory.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..incremental import IncrementalParser, find_in_stream, last_bytes
from .events import NfcAio, NfcMessage, NfcWeird, _Bad
from .wire import (
    _CLIENT_TYPES,
    _FILE_DATA_MAGIC_BYTES,
    _GRAIN_SIZE_BLOB,
    _SERVER_TYPES,
    _SESPARSE,
    _U64,
    AIO_CLOSE_FILE,
    AIO_ERROR,
    AIO_HEADER,
    AIO_IO,
    AIO_IO_OPS,
    AIO_MAGIC_BYTES,
    AIO_OPEN_FILE,
    AIO_OPEN_FILE_REPLY,
    AIO_TYPES,
    COMPRESSION,
    CONNECTION_DATA,
    CONVERSION_FLAGS,
    CREATEDIR,
    ERROR,
    FEATURES,
    FILE_DATA_HEADER,
    FILE_DATA_MAGIC,
    FILE_GET,
    FILE_PUT,
    FILE_TYPES,
    FILEOP_STATUS,
    FSSRVR_IO,
    FSSRVR_OPEN,
    MAX_AIO_PAYLOAD,
    MAX_CAPTURE,
    MAX_DATA_LENGTH,
    MAX_ERROR_TEXT,
    MAX_TEXT_LENGTH,
    MESSAGE_SIZE,
    MESSAGE_TYPE,
    MESSAGE_TYPES,
    NAME_LIST,
    VERSION,
)

# ---------------------------------------------------------------------------------------------
# Incremental parser
# ---------------------------------------------------------------------------------------------

_FIXED, _SEGMENT, _SCAN, _RESYNC = range(4)
# what a fixed-size piece being collected is
_HEAD, _BLOCK, _AIO_HEADER, _AIO_PAYLOAD = range(4)
_SYNC_WINDOW = MESSAGE_SIZE + 4  # a FILE_DATA block plus its file-header magic


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def _flag_names(flags: int) -> list[str]:
    return [name for bit, name in CONVERSION_FLAGS.items() if flags & bit]


class NfcDirection(IncrementalParser):
    """NFC parser for one direction of one TCP stream.

    ``feed()`` takes chunks split anywhere and returns events.  *role* (``"client"`` or
    ``"server"``) decides which side's IO frames carry data; if None it is learnt from
    messages only one side sends, and guessed per frame until then.

    Counters: ``messages`` (classic), ``aio_frames``, ``data_bytes`` (file data seen, not
    stored), ``bytes_lost`` (reported by gap()), ``message_types`` (Counter by name).
    The feed/gap/resync skeleton is :class:`~..incremental.IncrementalParser`'s.
    """

    _RESYNC = _RESYNC
    _SYNC_WINDOW = _SYNC_WINDOW

    def __init__(self, role: str | None = None) -> None:
        if role not in (None, "client", "server"):
            raise ValueError(f"role must be 'client', 'server' or None, not {role!r}")
        super().__init__()
        self.role = role
        self.messages = 0
        self.aio_frames = 0
        self.data_bytes = 0
        self.message_types: Counter = Counter()
        self.aio = False  # an AIO frame has been seen
        self._mode = _FIXED
        self._piece = _HEAD
        self._need = 4
        self._buf = bytearray()
        self._origin = (0.0, 0)
        self._event: dict[str, Any] | None = None  # the message being built
        self._segments: list[list] = []  # [name, bytes left, kind]
        self._capture = bytearray()
        self._extra = 0
        self._emitted = True
        self._scanned = 0  # _tail is also the scan carry-over

    # -- public API ----------------------------------------------------------------------------

    def _step(self, data: bytes, pos: int, ts: float, frame: int, events: list) -> int:
        mode = self._mode
        if mode == _FIXED:
            return self._fixed(data, pos, ts, frame, events)
        if mode == _SEGMENT:
            return self._segment(data, pos, events)
        if mode == _SCAN:
            return self._scan(data, pos, ts, frame, events)
        return self._resync_step(data, pos, ts, frame, events)

    def _gap(self, nbytes: int, ts: float, frame: int, events: list) -> None:
        """Inside file data a loss is just counted, else resync."""
        if self._mode == _SEGMENT and self._segments[0][2] == "data" and nbytes <= self._segments[0][1]:
            self._segments[0][1] -= nbytes
            self._advance(events)
            return
        what = self._event["name"] if self._event else "message header"
        if self._mode == _SCAN:
            self._finish_scan(events)
        elif self._mode == _SEGMENT and not self._emitted:
            self._partial_fields()
            self._emit(events)
        events.append(NfcWeird(ts, frame, "gap_desync",
                               f"{nbytes} bytes lost in {what}; resynchronising"))
        self._enter_resync(b"")

    def _finish(self, ts: float, frame: int, events: list) -> None:
        """Flush a frame whose extra runs to the end, report a cut message."""
        if self._mode == _SCAN:
            self._capture_scan(self._tail)
            self._tail = b""
            self._finish_scan(events)
            self._reset_fixed()
        elif self._mode == _SEGMENT:
            name = self._message()["name"]
            if not self._emitted:
                self._partial_fields()
                self._emit(events)
            events.append(NfcWeird(ts, frame, "truncated", f"stream ended inside the extras of {name}"))
        elif self._mode == _FIXED and self._buf:
            events.append(NfcWeird(ts, frame, "truncated",
                                   f"stream ended {len(self._buf)} bytes into a message"))

    def _weird(self, ts: float, frame: int, kind: str, detail: str) -> NfcWeird:
        return NfcWeird(ts, frame, kind, detail)

    # -- fixed-size parts: type word, 264-byte block, AIO header, AIO payload ------------------

    def _reset_fixed(self) -> None:
        self._mode, self._piece, self._need = _FIXED, _HEAD, 4
        self._buf.clear()
        self._event = None

    def _fixed(self, data: bytes, pos: int, ts: float, frame: int, events: list) -> int:
        if self._piece == _HEAD and not self._buf:
            self._origin = (ts, frame)
        piece = data[pos:pos + self._need - len(self._buf)]
        self._buf += piece
        pos += len(piece)
        if len(self._buf) < self._need:
            return pos
        block = bytes(self._buf)
        self._buf.clear()
        try:
            if self._piece == _HEAD:
                self._head(block)
            elif self._piece == _BLOCK:
                self._classic(block, events)
            elif self._piece == _AIO_HEADER:
                self._aio_header(block, events)
            else:
                self._aio_payload(block, events)
        except _Bad as exc:
            kind, detail = exc.args
            if self._event is not None and self._piece == _AIO_PAYLOAD:
                # the frame itself is intact, only its extra is unknowable: resync after it
                self._extra = 0
                self._emit(events)
                events.append(NfcWeird(*self._origin, kind, detail))
                self._enter_resync(b"")
                return pos
            events.append(NfcWeird(*self._origin, kind, detail))
            self._enter_resync(block[1:])
            return pos
        return pos

    def _head(self, word: bytes) -> None:
        if word == AIO_MAGIC_BYTES:
            self._piece, self._need = _AIO_HEADER, AIO_HEADER.size
            self._buf += word
            return
        (msg_type,) = MESSAGE_TYPE.unpack(word)
        if msg_type not in MESSAGE_TYPES:
            raise _Bad("unknown_message_type", f"u32 {msg_type:#x} is no NFC message type or AIO magic")
        self._piece, self._need = _BLOCK, MESSAGE_SIZE
        self._buf += word

    def _message(self) -> dict[str, Any]:
        """The message being built: there is one from its header until it is emitted (modes _SEGMENT and
        _SCAN, an AIO payload)."""
        event = self._event
        if event is None:  # a bug in the parser, not a property of the capture
            raise RuntimeError("NFC parser: no message is being built")
        return event

    def _start(self, kind: str, number: int, name: str, fields: dict, segments: list, **extra: int) -> None:
        self._event = {"kind": kind, "type": number, "name": name, "fields": fields, **extra}
        self._segments = [[n, length, k] for n, length, k in segments]
        self._extra = sum(length for _, length, k in segments if k != "scan")
        self._emitted = False
        self._capture.clear()

    def _classic(self, block: bytes, events: list) -> None:
        (msg_type,) = MESSAGE_TYPE.unpack_from(block)
        name = MESSAGE_TYPES[msg_type]
        fields, segments = self._classic_layout(msg_type, block)
        self._learn_role(msg_type)
        self._start("msg", msg_type, name, fields, segments)
        self._mode = _SEGMENT
        self._advance(events)

    def _learn_role(self, msg_type: int) -> None:
        if self.role is None:
            if msg_type in _CLIENT_TYPES:
                self.role = "client"
            elif msg_type in _SERVER_TYPES:
                self.role = "server"

    def _classic_layout(self, msg_type: int, block: bytes) -> tuple[dict, list]:
        """Decoded fields and the extras that follow the block: [(name, length, kind)]."""
        def text_length(name: str, value: int) -> int:
            if value > MAX_TEXT_LENGTH:
                raise _Bad("implausible_length",
                           f"{MESSAGE_TYPES[msg_type]} {name} of {value} bytes")
            return value

        if msg_type == 1:
            (_, file_type, conv, path_len, file_size, space, parent_len, device_len,
             passthrough, policy_len) = FILE_PUT.unpack_from(block)
            fields = {"file_type": FILE_TYPES.get(file_type, file_type), "conversion_flags": conv,
                      "conversion": _flag_names(conv), "path_len": path_len,
                      "file_size": file_size, "space_required": space}
            segments = [("path", text_length("pathLen", path_len), "text"),
                        ("parent_path", text_length("parentPathLen", parent_len), "text"),
                        ("device_path", text_length("rdmDevicePathLen", device_len), "text"),
                        ("storage_policy", text_length("storagePolicyLen", policy_len), "text")]
            if passthrough:
                fields["is_passthrough"] = passthrough
            if conv & _SESPARSE:
                segments.append(("grain_size", _GRAIN_SIZE_BLOB, "blob"))
            return fields, [s for s in segments if s[1]]
        if msg_type == 2:
            _, file_type, path_len, conv = FILE_GET.unpack_from(block)
            fields = {"file_type": FILE_TYPES.get(file_type, file_type), "path_len": path_len,
                      "conversion_flags": conv, "conversion": _flag_names(conv)}
            return fields, [("path", text_length("pathLen", path_len), "text")]
        if msg_type == 7:
            return {}, [("file_header", FILE_DATA_HEADER.size, "file_header")]
        if msg_type == 20:
            _, error_type, error_code, msg_len = ERROR.unpack_from(block)
            fields = {"error_type": error_type, "error_code": error_code, "msg_len": msg_len}
            return fields, [("text", text_length("msgLen", msg_len), "text")]
        if msg_type == 21:
            _, path_len, open_flags, raw_file = FSSRVR_OPEN.unpack_from(block)
            fields = {"path_len": path_len, "open_flags": open_flags, "raw_file": raw_file}
            return fields, [("path", text_length("pathLen", path_len), "text")]
        if msg_type == 23:
            _, direction, offset, length = FSSRVR_IO.unpack_from(block)
            fields = {"direction": "write" if direction == 1 else "read", "offset": offset,
                      "length": length}
            role = self.role or "client"
            carries = (role == "client") == (direction == 1)
            if carries and length > MAX_DATA_LENGTH:
                raise _Bad("implausible_length", f"NFC_FSSRVR_IO length {length}")
            return fields, [("data", length, "data")] if carries else []
        if msg_type in (31, 32, 33):
            _, size, flags, count = NAME_LIST.unpack_from(block)
            fields = {"size": size, "flags": flags, "count": count}
            return fields, [("names", text_length("size", size), "names")]
        if msg_type == 34:
            _, path_len, flags, _count = CREATEDIR.unpack_from(block)
            fields = {"path_len": path_len, "flags": flags}
            return fields, [("path", text_length("pathLen", path_len), "text")]
        if msg_type == 36:
            _, error_size, data_size, failed, succeeded = FILEOP_STATUS.unpack_from(block)
            fields = {"error_size": error_size, "data_size": data_size, "failed": failed,
                      "succeeded": succeeded}
            return fields, [("errors", text_length("errorSize", error_size), "blob"),
                            ("data", text_length("dataSize", data_size), "blob")]
        if msg_type == 43:
            token = block[4:MESSAGE_SIZE].split(b"\0", 1)[0]
            return {"token": token.decode("latin-1")}, []
        if msg_type == 51:
            return {"version": VERSION.unpack_from(block)[1]}, []
        if msg_type == 54:
            _, name_len, op_len = CONNECTION_DATA.unpack_from(block)
            fields = {"name_len": name_len, "op_id_len": op_len}
            return fields, [("client_name", text_length("nameLen", name_len), "text"),
                            ("op_id", text_length("opIdLen", op_len), "text")]
        if msg_type == 55:
            return {"features": FEATURES.unpack_from(block)[1]}, []
        return {}, []

    def _aio_header(self, header: bytes, events: list) -> None:
        _, aio_type, size, op_id = AIO_HEADER.unpack(header)
        if aio_type not in AIO_TYPES:
            raise _Bad("unknown_aio_type", f"AIO type {aio_type} (size {size}, opId {op_id})")
        if size > MAX_AIO_PAYLOAD:
            raise _Bad("implausible_length", f"AIO {AIO_TYPES[aio_type]} payload of {size} bytes")
        self._event = {"kind": "aio", "type": aio_type, "name": AIO_TYPES[aio_type],
                       "fields": {}, "size": size, "op_id": op_id}
        self._piece, self._need = _AIO_PAYLOAD, size
        if not size:
            self._aio_payload(b"", events)

    def _aio_payload(self, payload: bytes, events: list) -> None:
        event = self._message()
        aio_type = event["type"]
        fields, segments = self._aio_layout(aio_type, payload)
        self._start("aio", aio_type, event["name"], fields, segments,
                    size=event["size"], op_id=event["op_id"])
        self.aio = True
        self._mode = _SEGMENT
        self._advance(events)

    def _aio_layout(self, aio_type: int, payload: bytes) -> tuple[dict, list]:
        size = len(payload)
        if aio_type == 7:
            if size < AIO_IO.size:
                raise _Bad("short_aio_io", f"AIO IO payload of {size} bytes (want 44)")
            (handle, opcode, offset, total, frag_offset, frag_len, wire_len,
             _) = AIO_IO.unpack_from(payload)
            op, compression = opcode & 0xFFFFFFFF, opcode >> 32
            fields = {"handle": handle, "op": AIO_IO_OPS.get(op, op),
                      "compression": COMPRESSION.get(compression, compression),
                      "offset": offset, "total_length": total, "fragment_offset": frag_offset,
                      "fragment_length": frag_len, "wire_length": wire_len}
            role = self.role
            if role is None:
                role = "client" if handle else "server"
                if handle:
                    self.role = "client"
            carries = (role == "client" and op == 0) or (role == "server" and op == 1)
            if not carries:
                return fields, []
            extra = wire_len if (wire_len or compression) else frag_len
            if extra > MAX_DATA_LENGTH:
                raise _Bad("implausible_length", f"AIO IO fragment of {extra} bytes")
            return fields, [("data", extra, "data")]
        if aio_type == 4:
            if size < AIO_OPEN_FILE.size:
                return {}, []
            path_len, _, _, _, file_type, flags = AIO_OPEN_FILE.unpack_from(payload)
            fields = {"file_type": FILE_TYPES.get(file_type, file_type), "flags": flags}
            (handle,) = _U64.unpack_from(payload, 8)
            request = self.role == "client" or (self.role is None and handle == 0)
            if request:
                if self.role is None and path_len:
                    self.role = "client"
                if path_len > MAX_TEXT_LENGTH:
                    raise _Bad("implausible_length", f"AIO OPEN_FILE pathLen {path_len}")
                fields["path_len"] = path_len
                return fields, [("path", path_len, "text")] if path_len else []
            if size >= AIO_OPEN_FILE_REPLY.size:
                status, handle, _, _, sector = AIO_OPEN_FILE_REPLY.unpack_from(payload)
                fields.update(status=status, handle=handle, sector_size=sector)
            return fields, []
        if aio_type == 1:
            if size < AIO_ERROR.size:
                return {}, []
            code, _, text_len = AIO_ERROR.unpack_from(payload)
            if text_len > MAX_TEXT_LENGTH:
                raise _Bad("implausible_length", f"AIO ERROR text of {text_len} bytes")
            return {"code": code}, [("text", text_len, "text")] if text_len else []
        if aio_type == 5 and size >= AIO_CLOSE_FILE.size:
            return {"handle": AIO_CLOSE_FILE.unpack_from(payload)[0]}, []
        if aio_type in (10, 11):
            return {}, [("extra", 0, "scan")]
        words = [int.from_bytes(payload[i:i + 4], "little") for i in range(0, size - size % 4, 4)]
        return ({"words": words} if words else {}), []

    # -- extras after the fixed part -----------------------------------------------------------

    def _emit(self, events: list) -> None:
        event = self._message()
        self._emitted = True
        ts, frame = self._origin
        self.message_types[event["name"]] += 1
        if event["kind"] == "msg":
            self.messages += 1
            events.append(NfcMessage(ts, frame, event["type"], event["name"], event["fields"],
                                     self._extra))
        else:
            self.aio_frames += 1
            events.append(NfcAio(ts, frame, event["type"], event["name"], event["size"],
                                 event["op_id"], self._extra, event["fields"]))

    def _segment(self, data: bytes, pos: int, events: list) -> int:
        segment = self._segments[0]
        take = min(segment[1], len(data) - pos)
        if segment[2] == "data":
            self.data_bytes += take  # counted, never copied
        elif len(self._capture) < MAX_CAPTURE:
            self._capture += memoryview(data)[pos:pos + min(take, MAX_CAPTURE - len(self._capture))]
        segment[1] -= take
        pos += take
        self._advance(events)
        return pos

    def _advance(self, events: list) -> None:
        """Finish completed segments; emit before data starts; back to headers when done."""
        while self._segments:
            name, left, kind = self._segments[0]
            if kind == "scan":
                self._mode = _SCAN
                self._tail = b""
                self._scanned = 0
                return
            if kind == "data" and not self._emitted:
                self._emit(events)
            if left:
                return
            self._segments.pop(0)
            captured = bytes(self._capture)
            self._capture.clear()
            fields = self._message()["fields"]
            if kind == "text":
                text = _text(captured)
                fields[name] = text[:MAX_ERROR_TEXT] if name == "text" else text
            elif kind == "names":
                fields[name] = [_text(n) for n in captured.split(b"\0") if n][:32]
            elif kind == "file_header":
                magic, length = FILE_DATA_HEADER.unpack(captured)
                if magic != FILE_DATA_MAGIC or length > MAX_DATA_LENGTH:
                    self._emit(events)
                    events.append(NfcWeird(*self._origin, "bad_file_data",
                                           f"file header magic {magic:#x}, length {length}"))
                    self._enter_resync(b"")
                    return
                fields["data_length"] = length
                self._extra += length
                self._segments.insert(0, ["data", length, "data"])
        if not self._emitted:
            self._emit(events)
        self._reset_fixed()

    def _partial_fields(self) -> None:
        """The message is cut short: keep what its current text extra has so far."""
        name, _, kind = self._segments[0]
        if kind == "text":
            self._message()["fields"][name] = _text(bytes(self._capture))

    def _capture_scan(self, chunk: bytes | memoryview) -> None:
        self._scanned += len(chunk)
        self._extra = self._scanned
        if len(self._capture) < MAX_CAPTURE:
            self._capture += chunk[:MAX_CAPTURE - len(self._capture)]

    def _scan(self, data: bytes, pos: int, ts: float, frame: int, events: list) -> int:
        """An extra without a length field: it runs up to the next AIO magic."""
        tail = self._tail
        at = find_in_stream(tail, data, pos, len(AIO_MAGIC_BYTES), _find_magic)
        if at < 0:
            keep = last_bytes(tail, data, pos, len(AIO_MAGIC_BYTES) - 1)
            self._capture_scan(tail[:max(0, len(tail) + len(data) - pos - len(keep))])
            self._capture_scan(memoryview(data)[pos:max(pos, len(data) - len(keep))])
            self._tail = keep
            if self._scanned > MAX_TEXT_LENGTH:
                self._finish_scan(events)
                events.append(NfcWeird(ts, frame, "unterminated_extra",
                                       f"no AIO header within {self._scanned} bytes after "
                                       f"{self._message()['name']}; resynchronising"))
                self._enter_resync(b"")
            return len(data)
        self._tail = b""
        if at < len(tail):
            self._capture_scan(tail[:at])
            self._reparse(tail[at:])
            end = pos
        else:
            self._capture_scan(tail)
            end = pos + at - len(tail)
            self._capture_scan(memoryview(data)[pos:end])
        self._finish_scan(events)
        self._reset_fixed()
        return end

    def _finish_scan(self, events: list) -> None:
        if self._capture:
            self._message()["fields"]["extra"] = _text(bytes(self._capture))
        self._capture.clear()
        self._segments.clear()
        self._emit(events)

    # -- resynchronisation ---------------------------------------------------------------------

    def _enter_resync(self, tail: bytes = b"", skipped: int = 0) -> None:
        super()._enter_resync(tail, skipped)
        self._buf.clear()
        self._segments = []
        self._event = None

    def _sync_find(self, buf: bytes, start: int) -> int:
        """First offset >= *start* of a plausible AIO header or FILE_DATA block in *buf*, or -1."""
        best = self._first_hit(buf, AIO_MAGIC_BYTES, start, AIO_HEADER.size, _aio_header_ok)
        block = self._first_hit(buf, _FILE_DATA_MAGIC_BYTES, start, _SYNC_WINDOW, _file_data_ok,
                                shift=MESSAGE_SIZE)
        if block != -1 and (best == -1 or block < best):
            best = block
        return best

    def _synced(self, ts: float, frame: int, events: list) -> None:
        events.append(NfcWeird(ts, frame, "resync",
                               f"skipped {self._skipped} bytes to the next NFC header"))
        self._reset_fixed()


def _find_magic(buf: bytes, start: int) -> int:
    return buf.find(AIO_MAGIC_BYTES, start)


def _aio_header_ok(buf: bytes, at: int) -> bool:
    _, aio_type, size, _ = AIO_HEADER.unpack_from(buf, at)
    return aio_type in AIO_TYPES and size <= MAX_AIO_PAYLOAD


def _file_data_ok(buf: bytes, start: int) -> bool:
    return buf[start:start + 4] == b"\x07\0\0\0" and not any(buf[start + 4:start + 16])
