"""RFB/VNC messages and a console-use model for the MKS stream inside TLS #2.

Why: after ``200 Connect <vmx>`` and the second handshake the MKS stream is RFB with VMware
extensions (protocol.md §4.3): the client's 16-byte token, then — inferred — a ServerInit with
no version/security exchange, client SetEncodings (including VMware pseudo-encodings
0x574d56xx), FramebufferUpdateRequests, 8-byte KeyEvents and 6-byte PointerEvents, and server
FramebufferUpdate bursts. Only sizes and timing are visible on the wire, so this module makes
both realistic: updates are valid ZRLE rectangles (one zlib stream per connection, as ZRLE
requires) whose size follows what changed on screen, and user activity alternates typing
bursts, mouse moves with clicks, window redraws and idle stretches.
"""

from __future__ import annotations

import dataclasses
import random
import struct
import zlib

from .channel import CLIENT, SERVER, Step
from .pace import Pace

# encodings (RFC 6143 and the rfbproto registry)
RAW, COPYRECT, HEXTILE, ZRLE = 0, 1, 5, 16
DESKTOP_SIZE, LAST_RECT = -223, -224
VMWARE_CURSOR, VMWARE_CURSOR_STATE, VMWARE_CURSOR_POSITION = 0x574D5664, 0x574D5665, 0x574D5666
VMWARE_KEY_REPEAT, VMWARE_LED_STATE, VMWARE_DISPLAY_MODE = 0x574D5667, 0x574D5668, 0x574D5669
CLIENT_ENCODINGS = (ZRLE, HEXTILE, COPYRECT, RAW, DESKTOP_SIZE, LAST_RECT,
                    VMWARE_CURSOR, VMWARE_CURSOR_STATE, VMWARE_CURSOR_POSITION, VMWARE_LED_STATE,
                    VMWARE_DISPLAY_MODE)

# client -> server message types
SET_PIXEL_FORMAT, SET_ENCODINGS, FB_UPDATE_REQUEST, KEY_EVENT, POINTER_EVENT = 0, 2, 3, 4, 5
# server -> client
FB_UPDATE = 0

PIXEL_FORMAT = struct.pack("!BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
TILE = 64
KEYSYMS = [ord(c) for c in "abcdefghijklmnopqrstuvwxyz0123456789 -./"] + [0xFF0D, 0xFF08]   # + Return, BackSpace


def key_event(down: bool, keysym: int) -> bytes:
    """KeyEvent: 8 bytes."""
    return struct.pack("!BBxxI", KEY_EVENT, 1 if down else 0, keysym)


def pointer_event(buttons: int, x: int, y: int) -> bytes:
    """PointerEvent: 6 bytes."""
    return struct.pack("!BBHH", POINTER_EVENT, buttons, x, y)


def update_request(incremental: bool, x: int, y: int, w: int, h: int) -> bytes:
    """FramebufferUpdateRequest: 10 bytes."""
    return struct.pack("!BBHHHH", FB_UPDATE_REQUEST, 1 if incremental else 0, x, y, w, h)


def set_encodings(encodings=CLIENT_ENCODINGS) -> bytes:
    """SetEncodings: 4 + 4·n bytes."""
    return struct.pack(f"!BxH{len(encodings)}i", SET_ENCODINGS, len(encodings), *encodings)


def set_pixel_format() -> bytes:
    """SetPixelFormat (20 bytes) asking for 32 bpp true colour."""
    return struct.pack("!B3x", SET_PIXEL_FORMAT) + PIXEL_FORMAT


class Screen:
    """The server side of one RFB session: geometry, name and the ZRLE zlib stream."""

    def __init__(self, rng: random.Random, width: int = 1024, height: int = 768, name: str = "vm"):
        self.rng, self.width, self.height, self.name = rng, width, height, name
        self._zlib = zlib.compressobj(6)
        palette = [rng.getrandbits(24).to_bytes(3, "little") for _ in range(17)]
        self._background, self._palette = palette[0], palette[1:]

    def server_init(self) -> bytes:
        """ServerInit: size, pixel format, desktop name."""
        name = self.name.encode()
        return struct.pack("!HH", self.width, self.height) + PIXEL_FORMAT + struct.pack("!I", len(name)) + name

    def _tile(self, w: int, h: int, busy: bool) -> bytes:
        if not busy:
            return b"\x01" + self._background                       # solid tile
        out = bytearray(b"\x80")                                     # plain RLE tile
        left = w * h
        rng = self.rng
        while left:
            run = min(left, rng.choice((1, 1, 1, 2, 2, 3, 4, 6, 10, 24)))
            out += self._palette[rng.randrange(len(self._palette))] if rng.random() < 0.65 else self._background
            rest = run - 1
            out += b"\xff" * (rest // 255) + bytes([rest % 255])
            left -= run
        return bytes(out)

    def _zrle(self, w: int, h: int, busy: float) -> bytes:
        tiles = bytearray()
        for ty in range(0, h, TILE):
            for tx in range(0, w, TILE):
                tiles += self._tile(min(TILE, w - tx), min(TILE, h - ty), self.rng.random() < busy)
        data = self._zlib.compress(bytes(tiles)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        return struct.pack("!I", len(data)) + data

    def update(self, rects: list[tuple[int, int, int, int, float]]) -> bytes:
        """FramebufferUpdate of ZRLE rectangles ``(x, y, w, h, busy fraction)``."""
        out = [struct.pack("!BxH", FB_UPDATE, len(rects))]
        for x, y, w, h, busy in rects:
            w, h = min(w, self.width - x), min(h, self.height - y)
            out.append(struct.pack("!HHHHi", x, y, w, h, ZRLE) + self._zrle(w, h, busy))
        return b"".join(out)

    def pseudo(self, encoding: int, x: int = 0, y: int = 0, w: int = 0, h: int = 0, payload: bytes = b"") -> bytes:
        """A one-rectangle update carrying a pseudo-encoding (cursor, LED state …)."""
        return struct.pack("!BxHHHHHi", FB_UPDATE, 1, x, y, w, h, encoding) + payload

    def cursor_shape(self) -> bytes:
        """VMware Cursor (alpha, 32×32 RGBA)."""
        return self.pseudo(VMWARE_CURSOR, 4, 4, 32, 32, b"\x01\x00" + self.rng.randbytes(32 * 32 * 4))

    def random_rect(self, w: int, h: int) -> tuple[int, int]:
        """Top-left corner for a ``w``×``h`` rectangle that fits on screen."""
        return self.rng.randrange(0, max(1, self.width - w)), self.rng.randrange(0, max(1, self.height - h))


def mks_opening(screen: Screen, pace: Pace, token: str) -> list[Step]:
    """Token, ServerInit, client set-up flight, full-screen update (marks ``mks_token`` …)."""
    return [
        Step(CLIENT, token.encode(), pace("program"), "mks_token"),
        Step(SERVER, screen.server_init(), pace("reply"), "rfb_server_init"),
        Step(CLIENT, (set_pixel_format(), set_encodings(), update_request(False, 0, 0, screen.width, screen.height)),
             pace("program"), "rfb_set_encodings"),
        Step(SERVER, (screen.cursor_shape(), screen.pseudo(VMWARE_LED_STATE, payload=struct.pack("!I", 2)),
                      screen.update([(0, 0, screen.width, screen.height, 0.25)])), pace("render"), "rfb_first_update"),
        Step(CLIENT, update_request(True, 0, 0, screen.width, screen.height), pace("program")),
    ]


def _answer(screen: Screen, pace: Pace, rects, mark: str | None = None) -> list[Step]:
    """A server update followed by the client's next incremental request."""
    return [Step(SERVER, screen.update(rects), pace("render"), mark),
            Step(CLIENT, update_request(True, 0, 0, screen.width, screen.height), pace("program"))]


def typing(screen: Screen, pace: Pace, rng: random.Random, keys: int) -> tuple[list[Step], float]:
    """A burst of ``keys`` keystrokes, each echoed by a small glyph update."""
    steps, spent = [], 0.0
    x, y = screen.random_rect(400, 16)
    for _ in range(keys):
        keysym = rng.choice(KEYSYMS)
        gap, hold = pace("keystroke"), pace("key_hold")
        steps += [Step(CLIENT, key_event(True, keysym), gap), Step(CLIENT, key_event(False, keysym), hold)]
        steps += _answer(screen, pace, [(x, y, 8, 16, 1.0)])
        x = x + 8 if keysym != 0xFF0D else 8
        spent += gap + hold
    return steps, spent


def mouse(screen: Screen, pace: Pace, rng: random.Random, moves: int, click: bool) -> tuple[list[Step], float]:
    """A pointer movement of ``moves`` events, optionally ending in a click that redraws a window."""
    steps, spent = [], 0.0
    x, y = screen.random_rect(1, 1)
    tx, ty = screen.random_rect(1, 1)
    for i in range(1, moves + 1):
        px, py = x + (tx - x) * i // moves, y + (ty - y) * i // moves
        gap = pace("pointer")
        steps.append(Step(CLIENT, pointer_event(0, px, py), gap))
        spent += gap
        if i % 12 == 0:                                   # hover highlight
            steps += _answer(screen, pace, [(px, py, 120, 24, 0.6)])
    if click:
        hold = pace("key_hold")
        steps += [Step(CLIENT, pointer_event(1, tx, ty), pace("pointer")), Step(CLIENT, pointer_event(0, tx, ty), hold)]
        w, h = rng.choice(((640, 480), (480, 360), (800, 600)))
        wx, wy = screen.random_rect(w, h)
        steps += _answer(screen, pace, [(wx, wy, w, h, 0.35)], "window_redraw")
        spent += hold
    return steps, spent


def idle(screen: Screen, pace: Pace, rng: random.Random, seconds: float, blink: bool) -> tuple[list[Step], float]:
    """An idle stretch; with ``blink`` a text cursor blinks (tiny update every ~0.5 s)."""
    if not blink:
        return [Step(CLIENT, update_request(True, 0, 0, screen.width, screen.height), seconds)], seconds
    steps, spent = [], 0.0
    x, y = screen.random_rect(8, 16)
    while spent < seconds:
        gap = rng.uniform(0.45, 0.55)
        steps.append(Step(SERVER, screen.update([(x, y, 8, 16, 1.0)]), gap))
        steps.append(Step(CLIENT, update_request(True, 0, 0, screen.width, screen.height), pace("program")))
        spent += gap
    return steps, spent


def console_use(screen: Screen, pace: Pace, rng: random.Random, seconds: float) -> list[Step]:
    """About ``seconds`` of console use: typing, mouse, redraws, idle, in a seeded order.

    The first step of each activity carries its mark (``typing``, ``mouse``, ``idle_blink``;
    a silent idle stretch has no packet until it ends: ``idle_quiet_end``); a click's redraw is
    marked ``window_redraw``.
    """
    steps: list[Step] = []
    spent = 0.0
    while spent < seconds:
        kind = rng.choices(("typing", "mouse", "idle_blink", "idle_quiet"), weights=(4, 3, 2, 1))[0]
        if kind == "typing":
            more, took = typing(screen, pace, rng, rng.randint(4, 18))
        elif kind == "mouse":
            more, took = mouse(screen, pace, rng, rng.randint(10, 45), click=rng.random() < 0.6)
        else:
            more, took = idle(screen, pace, rng, rng.uniform(1.5, 5.0), blink=kind == "idle_blink")
        more[0] = dataclasses.replace(more[0], mark="idle_quiet_end" if kind == "idle_quiet" else kind)
        steps += more
        spent += took
    return steps
