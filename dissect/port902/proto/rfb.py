"""RFB (VNC) messages of a VM console (MKS) stream, as read from decrypted TLS #2.

RFC 6143 §7 (ServerInit §7.3.2, pixel format §7.4, client messages §7.5: SetPixelFormat,
SetEncodings, FramebufferUpdateRequest, KeyEvent, PointerEvent, ClientCutText; server
messages §7.6: FramebufferUpdate, SetColourMapEntries, Bell, ServerCutText; encodings §7.7,
pseudo-encodings §7.8) and VMware's pseudo-encodings 0x574D5664-0x574D5669 (cursor, cursor
state, cursor position, key repeat, LED state, display mode; protocol.md §4.3).  An MKS stream
skips the RFB opening (authd did it): the client sends a 16-byte token, the server begins with
ServerInit.  A plain VNC opening (``RFB 003.00x``, security None) is followed too.

Bytes in, objects out: :class:`RfbParser` takes each direction's plaintext in pieces and
returns :class:`RfbMessage` objects; rectangle data is skipped by its length, never held.
Encodings without a length field (Hextile and TRLE, RFC 6143 §7.7.4-5; Tight, the TightVNC /
libvncserver spec) are walked by their grammar in :mod:`.rfb_rect` -- a few header bytes at a
time, pixel data skipped -- to find where the rectangle ends.  ZRLE and Zlib carry a u32 length
and Tight carries compact lengths, so no zlib stream is ever inflated.  An encoding whose
length cannot be known stops parsing of that direction (``desync``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .rfb_rect import WALKERS, RectWeird, Walker

ENCODINGS = {
    0: "Raw", 1: "CopyRect", 2: "RRE", 4: "CoRRE", 5: "Hextile", 6: "Zlib", 7: "Tight", 8: "ZlibHex",
    15: "TRLE", 16: "ZRLE", 21: "JPEG", -260: "TightPNG", -223: "DesktopSize", -224: "LastRect", -232: "PointerPos",
    -239: "Cursor", -240: "XCursor", -257: "QEMUPointerMotionChange", -258: "QEMUExtendedKeyEvent",
    -305: "gii", -307: "DesktopName", -308: "ExtendedDesktopSize", -309: "xvp", -312: "Fence",
    -313: "ContinuousUpdates", -314: "CursorWithAlpha",
    0x574D5664: "VMwareCursor", 0x574D5665: "VMwareCursorState", 0x574D5666: "VMwareCursorPosition",
    0x574D5667: "VMwareKeyRepeat", 0x574D5668: "VMwareLEDState", 0x574D5669: "VMwareDisplayModeChange",
    0x574D566A: "VMwareVirtualMouse",
}
CLIENT_TYPES = {0: "SetPixelFormat", 2: "SetEncodings", 3: "FramebufferUpdateRequest", 4: "KeyEvent",
                5: "PointerEvent", 6: "ClientCutText"}
SERVER_TYPES = {0: "FramebufferUpdate", 1: "SetColourMapEntries", 2: "Bell", 3: "ServerCutText"}
TOKEN_LEN = 16


def encoding_name(code: int) -> str:
    if code in ENCODINGS:
        return ENCODINGS[code]
    if -256 <= code <= -247:
        return f"CompressLevel{code + 256}"
    if -32 <= code <= -23:
        return f"QualityLevel{code + 32}"
    return f"unknown({code})"


@dataclass(frozen=True, slots=True)
class PixelFormat:
    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    @classmethod
    def parse(cls, b: bytes) -> "PixelFormat":
        bpp, depth, be, tc, rm, gm, bm, rs, gs, bs = struct.unpack("!BBBBHHHBBB3x", b[:16])
        return cls(bpp, depth, bool(be), bool(tc), rm, gm, bm, rs, gs, bs)

    def describe(self) -> str:
        return f"{self.bits_per_pixel} bpp, depth {self.depth}{', true colour' if self.true_colour else ''}"


@dataclass(frozen=True, slots=True)
class RfbMessage:
    """One RFB message; ``fields`` holds what it says (key events: ``keysym`` and ``down``)."""

    ts: float
    frame: int
    from_client: bool
    name: str
    length: int
    fields: dict = field(default_factory=dict)


class RfbWeird(Exception):
    pass


class _Dir:
    __slots__ = ("buf", "skip", "state", "rects_left", "update", "stopped", "ts", "frame", "msg_ts", "msg_frame",
                 "walker", "want")

    def __init__(self, state: str) -> None:
        self.buf = bytearray()
        self.skip = 0
        self.state = state
        self.rects_left = 0
        self.update: dict | None = None
        self.stopped: str | None = None
        self.ts, self.frame = 0.0, 0
        self.msg_ts, self.msg_frame = 0.0, 0
        self.walker: Walker | None = None  # generator walking one rectangle's grammar (rfb_rect)
        self.want = 0  # what it asked for: n > 0 the next n bytes, n < 0 skip -n bytes


class RfbParser:
    """Both directions of one RFB stream.  ``mks=True``: token + ServerInit (no opening)."""

    def __init__(self, mks: bool = True) -> None:
        self.mks = mks
        self.client = _Dir("token" if mks else "c_version")
        self.server = _Dir("init" if mks else "s_version")
        self.pixel_format: PixelFormat | None = None
        self.width = self.height = None
        self.name: str | None = None
        self.encodings: list[int] = []
        self.weird: list[tuple[float, int, str, str]] = []
        self.version: str | None = None

    @property
    def bpp(self) -> int:
        return (self.pixel_format.bits_per_pixel if self.pixel_format else 32) // 8 or 1

    # -- input -------------------------------------------------------------------------------

    def feed(self, from_client: bool, data: bytes, ts: float, frame: int) -> list[RfbMessage]:
        d = self.client if from_client else self.server
        out: list[RfbMessage] = []
        if d.stopped:
            return out
        view = memoryview(data)
        if d.skip:
            n = min(d.skip, len(view))
            d.skip -= n
            view = view[n:]
            if not d.skip and d.update is not None and d.rects_left == 0:
                self._end_update(d, out)
        if not view:
            return out
        d.buf += view
        d.ts, d.frame = ts, frame
        pos = 0
        try:
            while True:
                if d.skip:
                    n = min(d.skip, len(d.buf) - pos)
                    d.skip -= n
                    pos += n
                    if d.skip:
                        break
                    if d.update is not None and d.rects_left == 0:
                        self._end_update(d, out)
                if d.walker is not None:
                    pos = self._walk(d, pos, out)
                    if d.walker is not None:
                        break
                    continue
                used = (self._client if from_client else self._server)(d, d.buf, pos, out)
                if used == 0:
                    break
                pos += used
        except (RfbWeird, RectWeird) as exc:
            d.stopped = str(exc)
            self.weird.append((ts, frame, "rfb_desync", str(exc)))
            d.buf.clear()
            return out
        del d.buf[:pos]
        return out

    def _walk(self, d: _Dir, pos: int, out: list) -> int:
        """Drive the rectangle walker over ``d.buf`` from ``pos``; returns the new position."""
        b, walker, upd = d.buf, d.walker, d.update
        assert walker is not None and upd is not None  # set together by _rect
        end = len(b)
        while True:
            want = d.want
            if want < 0:
                n = min(-want, end - pos)
                pos += n
                upd["bytes"] += n
                if n < -want:
                    d.want = want + n
                    return pos
                arg = None
            else:
                if end - pos < want:
                    return pos
                arg = b[pos:pos + want]
                pos += want
                upd["bytes"] += want
            try:
                d.want = walker.send(arg)
            except StopIteration:
                d.walker = None
                if d.rects_left == 0:
                    self._end_update(d, out)
                return pos

    def _msg(self, d: _Dir, out: list, from_client: bool, msg: str, length: int, **fields) -> None:
        out.append(RfbMessage(d.ts, d.frame, from_client, msg, length, fields))

    # -- client ------------------------------------------------------------------------------

    def _client(self, d: _Dir, b: bytearray, pos: int, out: list) -> int:
        left = len(b) - pos
        if d.state == "token":
            if left < TOKEN_LEN:
                return 0
            self._msg(d, out, True, "Token", TOKEN_LEN)
            d.state = "msg"
            return TOKEN_LEN
        if d.state == "c_version":
            if left < 12:
                return 0
            self._msg(d, out, True, "ProtocolVersion", 12, version=bytes(b[pos:pos + 12]).decode("latin-1").strip())
            d.state = "c_security"
            return 12
        if d.state == "c_security":  # 3.7+: one byte (the chosen type); 3.3: nothing
            if left < 1:
                return 0
            self._msg(d, out, True, "SecurityChoice", 1, type=b[pos])
            d.state = "c_init"
            return 1
        if d.state == "c_init":
            if left < 1:
                return 0
            self._msg(d, out, True, "ClientInit", 1, shared=bool(b[pos]))
            d.state = "msg"
            return 1
        if left < 1:
            return 0
        t = b[pos]
        if t == 0:
            if left < 20:
                return 0
            self.pixel_format = PixelFormat.parse(bytes(b[pos + 4:pos + 20]))
            self._msg(d, out, True, "SetPixelFormat", 20, pixel_format=self.pixel_format.describe())
            return 20
        if t == 2:
            if left < 4:
                return 0
            n = struct.unpack_from("!H", b, pos + 2)[0]
            if left < 4 + 4 * n:
                return 0
            codes = list(struct.unpack_from(f"!{n}i", b, pos + 4))
            self.encodings = codes
            self._msg(d, out, True, "SetEncodings", 4 + 4 * n, encodings=[encoding_name(c) for c in codes])
            return 4 + 4 * n
        if t == 3:
            if left < 10:
                return 0
            inc, x, y, w, h = struct.unpack_from("!BHHHH", b, pos + 1)
            self._msg(d, out, True, "FramebufferUpdateRequest", 10, incremental=bool(inc), x=x, y=y, w=w, h=h)
            return 10
        if t == 4:
            if left < 8:
                return 0
            down, key = struct.unpack_from("!BxxI", b, pos + 1)
            self._msg(d, out, True, "KeyEvent", 8, down=bool(down), keysym=key)
            return 8
        if t == 5:
            if left < 6:
                return 0
            buttons, x, y = struct.unpack_from("!BHH", b, pos + 1)
            self._msg(d, out, True, "PointerEvent", 6, buttons=buttons, x=x, y=y)
            return 6
        if t == 6:
            if left < 8:
                return 0
            n = struct.unpack_from("!I", b, pos + 4)[0]
            self._msg(d, out, True, "ClientCutText", 8 + n, text_length=n)
            d.skip = n
            return 8
        raise RfbWeird(f"client message type {t} is not one RFB defines")

    # -- server ------------------------------------------------------------------------------

    def _server(self, d: _Dir, b: bytearray, pos: int, out: list) -> int:
        left = len(b) - pos
        st = d.state
        if st == "s_version":
            if left < 12:
                return 0
            self.version = bytes(b[pos:pos + 12]).decode("latin-1").strip()
            self._msg(d, out, False, "ProtocolVersion", 12, version=self.version)
            d.state = "s_security"
            return 12
        if st == "s_security":
            if self.version and self.version < "RFB 003.007":
                if left < 4:
                    return 0
                d.state = "init" if struct.unpack_from("!I", b, pos)[0] == 1 else "s_result"
                self._msg(d, out, False, "SecurityType", 4)
                return 4
            if left < 1:
                return 0
            n = b[pos]
            if left < 1 + n:
                return 0
            self._msg(d, out, False, "SecurityTypes", 1 + n, types=list(b[pos + 1:pos + 1 + n]))
            d.state = "s_result" if self.version and self.version >= "RFB 003.008" else "init"
            return 1 + n
        if st == "s_result":
            if left < 4:
                return 0
            self._msg(d, out, False, "SecurityResult", 4, ok=struct.unpack_from("!I", b, pos)[0] == 0)
            d.state = "init"
            return 4
        if st == "init":
            if left < 24:
                return 0
            n = struct.unpack_from("!I", b, pos + 20)[0]
            if n > 1 << 16:
                raise RfbWeird(f"ServerInit desktop name of {n} bytes")
            if left < 24 + n:
                return 0
            self.width, self.height = struct.unpack_from("!HH", b, pos)
            self.pixel_format = PixelFormat.parse(bytes(b[pos + 4:pos + 20]))
            self.name = bytes(b[pos + 24:pos + 24 + n]).decode("utf-8", "replace")
            self._msg(d, out, False, "ServerInit", 24 + n, width=self.width, height=self.height,
                      pixel_format=self.pixel_format.describe(), name=self.name)
            d.state = "msg"
            return 24 + n
        if st == "rect":
            return self._rect(d, b, pos, out)
        if left < 1:
            return 0
        t = b[pos]
        if t == 0:
            if left < 4:
                return 0
            d.rects_left = struct.unpack_from("!H", b, pos + 2)[0]
            d.update = {"rects": 0, "bytes": 4, "encodings": {}}
            d.msg_ts, d.msg_frame = d.ts, d.frame
            if d.rects_left == 0:
                self._end_update(d, out)
            else:
                d.state = "rect"
            return 4
        if t == 1:
            if left < 6:
                return 0
            n = struct.unpack_from("!H", b, pos + 4)[0]
            self._msg(d, out, False, "SetColourMapEntries", 6 + 6 * n, colours=n)
            d.skip = 6 * n
            return 6
        if t == 2:
            self._msg(d, out, False, "Bell", 1)
            return 1
        if t == 3:
            if left < 8:
                return 0
            n = struct.unpack_from("!I", b, pos + 4)[0]
            self._msg(d, out, False, "ServerCutText", 8 + n, text_length=n)
            d.skip = n
            return 8
        raise RfbWeird(f"server message type {t} is not one RFB defines")

    def _rect(self, d: _Dir, b: bytearray, pos: int, out: list) -> int:
        left = len(b) - pos
        if left < 12:
            return 0
        x, y, w, h, enc = struct.unpack_from("!HHHHi", b, pos)
        bpp = self.bpp
        head = 12
        if enc == 0:
            size = w * h * bpp
        elif enc == 1:
            size = 4
        elif enc in (2, 4):
            extra = 4 + bpp
            if left < head + extra:
                return 0
            n = struct.unpack_from("!I", b, pos + head)[0]
            size = 4 + bpp + n * (bpp + (8 if enc == 2 else 4))
        elif enc in (6, 16):
            if left < head + 4:
                return 0
            size = 4 + struct.unpack_from("!I", b, pos + head)[0]
        elif enc in WALKERS:
            size = -1
        elif enc in (-223, -224, -232, 0x574D5666):
            size = 0
        elif enc == -239:
            size = w * h * bpp + ((w + 7) // 8) * h
        elif enc == -240:
            size = 6 + 2 * ((w + 7) // 8) * h if w * h else 0
        elif enc == -308:
            if left < head + 4:
                return 0
            size = 4 + 16 * b[pos + head]
        elif enc == -307:
            if left < head + 4:
                return 0
            size = 4 + struct.unpack_from("!I", b, pos + head)[0]
        elif enc == -314:
            if left < head + 4:
                return 0
            inner = struct.unpack_from("!i", b, pos + head)[0]
            if inner != 0:
                raise RfbWeird(f"CursorWithAlpha with encoding {inner}: length unknown")
            size = 4 + w * h * 4
        elif enc == 0x574D5664:  # VMware cursor: type, pad, then masks or RGBA
            if left < head + 2:
                return 0
            kind = b[pos + head]
            size = 2 + (2 * w * h * bpp if kind == 0 else w * h * 4)
        elif enc == 0x574D5665:
            size = 2
        elif enc == 0x574D5668:
            size = 4
        elif enc == 0x574D5669:
            size = 16
        else:
            raise RfbWeird(f"rectangle encoding {encoding_name(enc)}: its length cannot be known, "
                           "server messages are no longer followed")
        upd = d.update
        if upd is None:
            raise RfbWeird("rectangle outside a FramebufferUpdate")
        upd["rects"] += 1
        upd["bytes"] += head + max(size, 0)
        name = encoding_name(enc)
        upd["encodings"][name] = upd["encodings"].get(name, 0) + 1
        if enc in (-223, 0x574D5669):
            self.width, self.height = w, h
            upd["resize"] = (w, h)
        d.rects_left -= 1
        if enc == -224:
            d.rects_left = 0
        taken = head
        if size < 0:  # the walker counts what it reads
            walker = WALKERS[enc](w, h, self.pixel_format)
            d.walker, d.want = walker, next(walker)
        else:
            d.skip = size
        if d.rects_left == 0:
            d.state = "msg"
            if not d.skip and d.walker is None:
                self._end_update(d, out)
        return taken

    def _end_update(self, d: _Dir, out: list) -> None:
        upd, d.update = d.update, None
        if upd is None:
            return
        out.append(RfbMessage(d.msg_ts, d.msg_frame, False, "FramebufferUpdate", upd["bytes"], upd))
