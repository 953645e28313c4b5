"""Console (MKS) traffic models: what people do with a VM console, as RFB inside TLS #2.

Why: after the hand-off an MKS session is opaque TLS, so what separates it from a bulk copy is
its *shape* — tiny client messages (8-byte KeyEvents, 6-byte PointerEvents, 10-byte update
requests), server updates whose size follows what changed on screen, and pauses. Field
captures range from a console opened for a few seconds to check a boot screen, through an
admin typing at a Linux prompt or clicking through a Windows desktop, to a console left open
for hours; this module draws such sessions from named profiles with wide parameter ranges.

Profiles (``PROFILES``) weight the activities:

``typing``    key presses at a person's speed, each echoed by a glyph-sized update
``command``   Return, then the command's output scrolls (a burst of text-area updates)
``mouse``     pointer moves at 50-125 Hz with hover highlights, cursor-shape changes, clicks
              that redraw a window, drags that redraw continuously
``redraw``    large or full-screen updates at video-like rates (boot splash, scrolling a web
              page, playing a video, an installer's progress screen)
``mode``      the guest changes resolution (VMware Display Mode Change + full redraw)
``idle``      nothing on screen changes: no packet at all, or a blinking text cursor

Long sessions are compressed sensibly: activity time is capped (``active_cap``) and the rest of
the requested duration is spread over idle stretches, which cost no packets — a console left
open for an hour has the timing of an hour and the packet count of a few minutes, as in the
field. Screen content is generated cheaply (ZRLE packed-palette tiles from random bytes with a
tunable share of background), so full-HD redraws stay fast while their compressed sizes vary
with content as real ones do.
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, replace
from typing import Iterator

from . import rfb
from .channel import CLIENT, SERVER, Step
from .pace import Pace

SCREEN_SIZES = ((640, 480), (720, 400), (800, 600), (1024, 768), (1152, 864), (1280, 720), (1280, 800),
                (1280, 1024), (1366, 768), (1440, 900), (1600, 900), (1680, 1050), (1920, 1080), (1920, 1200),
                (2560, 1440))
# activity -> weight; "active" is the share of the session spent active (before the cap),
# "blink" whether idle stretches show a blinking text cursor
PROFILES = {
    "idle": {"typing": 1, "command": 0.5, "mouse": 1, "redraw": 0.3, "mode": 0.05, "active": 0.04, "blink": 0.5},
    "text": {"typing": 5, "command": 3, "mouse": 0.3, "redraw": 0.4, "mode": 0.05, "active": 0.5, "blink": 0.9},
    "desktop": {"typing": 1.5, "command": 0.3, "mouse": 5, "redraw": 1.5, "mode": 0.15, "active": 0.6, "blink": 0.3},
    "media": {"typing": 0.3, "command": 0.2, "mouse": 1.5, "redraw": 5, "mode": 0.2, "active": 0.85, "blink": 0.1},
    "boot": {"typing": 1, "command": 1, "mouse": 0.5, "redraw": 3, "mode": 1.0, "active": 0.8, "blink": 0.6},
}
ACTIVITIES = ("typing", "command", "mouse", "redraw", "mode")


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return low * (high / low) ** rng.random()


class FastScreen(rfb.Screen):
    """``rfb.Screen`` whose busy tiles are ZRLE packed-palette tiles built from random bytes.

    ``density`` is the share of non-background ink inside a busy tile (text ~0.15, photos ~1);
    it decides how well zlib compresses the update, hence its size on the wire.
    """

    _TABLES: dict[int, bytes] = {}

    def __init__(self, rng: random.Random, width: int = 1024, height: int = 768, name: str = "vm"):
        super().__init__(rng, width, height, name)
        self._zlib = zlib.compressobj(1)          # fast level, as interactive VNC servers use
        self.density = 0.3
        self._palette_block = b"".join(self._palette[:15]) + self._background

    def _table(self) -> bytes:
        k = max(1, min(256, int(self.density * 256)))
        table = self._TABLES.get(k)
        if table is None:
            table = bytes(b if b < k else 0 for b in range(256))
            self._TABLES[k] = table
        return table

    def _tile(self, w: int, h: int, busy: bool) -> bytes:
        if not busy:
            return b"\x01" + self._background
        rows = (w * 4 + 7) // 8
        return b"\x10" + self._palette_block + self.rng.randbytes(rows * h).translate(self._table())

    def mode_change(self, width: int, height: int) -> bytes:
        """VMware Display Mode Change (0x574d5669): new size and pixel format; the caller redraws."""
        self.width, self.height = width, height
        return self.pseudo(rfb.VMWARE_DISPLAY_MODE, 0, 0, width, height, rfb.PIXEL_FORMAT)

    def cursor_state(self, visible: bool = True) -> bytes:
        """VMware Cursor State (flags: visible, absolute)."""
        return self.pseudo(rfb.VMWARE_CURSOR_STATE, payload=struct.pack("!H", 0x3 if visible else 0x2))


@dataclass(frozen=True)
class ConsolePlan:
    """Parameters of one console session (recorded in labels as ``traffic``)."""

    profile: str
    seconds: float
    width: int
    height: int
    typist: float = 1.0          # multiplies keystroke gaps: 0.6 fast typist, 2.0 hunt-and-peck
    active_cap: float = 240.0    # seconds of activity at most; the rest is idle
    boot_from: tuple[int, int] | None = None   # starts in BIOS/text mode, then the guest switches

    def as_dict(self) -> dict:
        return {"model": "console", "profile": self.profile, "seconds": round(self.seconds, 3),
                "screen": f"{self.width}x{self.height}", "typist": round(self.typist, 2),
                "active_cap_s": self.active_cap, "boot_from": f"{self.boot_from[0]}x{self.boot_from[1]}"
                if self.boot_from else None}


def draw_plan(rng: random.Random, seconds: float | None = None, profile: str | None = None) -> ConsolePlan:
    """A random console plan: profile, duration (seconds to hours, log-uniform), screen, typist."""
    profile = profile or rng.choices(list(PROFILES), weights=(3, 4, 4, 1.5, 1))[0]
    if seconds is None:
        seconds = 10 ** rng.uniform(0.5, 4.0)           # ~3 s .. ~2.8 h
    width, height = rng.choice(SCREEN_SIZES)
    boot = None
    if profile == "boot" or rng.random() < 0.08:
        boot = rng.choice(((640, 480), (720, 400), (800, 600)))
    return ConsolePlan(profile, seconds, width, height, typist=rng.uniform(0.6, 2.2),
                       active_cap=rng.uniform(60, 300), boot_from=boot)


class Console:
    """Generates the RFB steps of one console session after the MKS opening."""

    def __init__(self, screen: FastScreen, pace: Pace, rng: random.Random, plan: ConsolePlan):
        self.screen, self.pace, self.rng, self.plan = screen, pace, rng, plan
        self.weights = PROFILES[plan.profile]
        self._carry = 0.0           # idle time to add to the next step's delay
        self._marked: set[str] = set()

    # -- helpers ------------------------------------------------------------------------------

    def _step(self, side: str, data, delay: float, mark: str | None = None) -> Step:
        if mark and mark in self._marked:
            mark = None
        elif mark:
            self._marked.add(mark)
        step = Step(side, data, delay + self._carry, mark)
        self._carry = 0.0
        return step

    def _request(self) -> Step:
        s = self.screen
        return self._step(CLIENT, rfb.update_request(True, 0, 0, s.width, s.height), self.pace("program"))

    def _update(self, rects, density: float, mark: str | None = None, delay: float | None = None) -> Iterator[Step]:
        self.screen.density = density
        yield self._step(SERVER, self.screen.update(rects), self.pace("render") if delay is None else delay, mark)
        yield self._request()

    # -- activities: each yields steps and returns the seconds it took -------------------------

    def typing(self, keys: int) -> Iterator[Step]:
        s, rng = self.screen, self.rng
        x, y = s.random_rect(min(600, s.width // 2), 16)
        for n in range(keys):
            keysym = rng.choice(rfb.KEYSYMS[:-2])
            gap = self.pace("keystroke") * self.plan.typist
            hold = self.pace("key_hold")
            yield self._step(CLIENT, rfb.key_event(True, keysym), gap, "typing" if n == 0 else None)
            yield self._step(CLIENT, rfb.key_event(False, keysym), hold)
            if rng.random() < 0.85:                    # sometimes one update echoes two keys
                yield from self._update([(x, y, 8 * rng.choice((1, 1, 1, 2)), 16, 1.0)], 0.15)
            x = x + 8 if x + 16 < s.width else 8
            self.spent += gap + hold

    def command(self) -> Iterator[Step]:
        s, rng = self.screen, self.rng
        yield self._step(CLIENT, rfb.key_event(True, 0xFF0D), self.pace("keystroke") * self.plan.typist, "command")
        yield self._step(CLIENT, rfb.key_event(False, 0xFF0D), self.pace("key_hold"))
        lines = rng.choice((1, 1, 2, 3, 8, 25, 60, 200))
        bursts = min(40, max(1, lines // 8))
        for _ in range(bursts):
            h = min(s.height, 16 * min(lines, rng.randint(1, 50)))
            gap = rng.uniform(0.01, 0.06)
            yield from self._update([(0, max(0, s.height - h), s.width, h, rng.uniform(0.3, 0.9))],
                                    rng.uniform(0.04, 0.15), delay=gap)
            self.spent += gap
        self.spent += 0.2

    def mouse(self, moves: int) -> Iterator[Step]:
        s, rng = self.screen, self.rng
        x, y = s.random_rect(1, 1)
        tx, ty = s.random_rect(1, 1)
        drag = rng.random() < 0.15
        buttons = 1 if drag else 0
        hz = rng.uniform(0.008, 0.02)
        for i in range(1, moves + 1):
            px, py = x + (tx - x) * i // moves, y + (ty - y) * i // moves
            gap = hz * rng.uniform(0.8, 1.25)
            yield self._step(CLIENT, rfb.pointer_event(buttons, px, py), gap, "mouse" if i == 1 else None)
            self.spent += gap
            if drag and i % 3 == 0:                    # a window follows the pointer
                w, h = min(s.width, 480), min(s.height, 360)
                yield from self._update([(max(0, px - w // 2), max(0, py - 10), w, h, 0.5)], 0.12)
            elif i % rng.choice((8, 12, 20)) == 0:      # hover highlight / tooltip
                yield from self._update([(px, py, rng.choice((80, 120, 200)), rng.choice((20, 24, 40)), 0.6)], 0.3)
            elif rng.random() < 0.01:                   # cursor shape changes over a link / edge
                yield self._step(SERVER, s.cursor_shape(), self.pace("render"))
        if drag:
            yield self._step(CLIENT, rfb.pointer_event(0, tx, ty), self.pace("key_hold"))
        elif rng.random() < 0.6:
            hold = self.pace("key_hold")
            yield self._step(CLIENT, rfb.pointer_event(1, tx, ty), self.pace("pointer"))
            yield self._step(CLIENT, rfb.pointer_event(0, tx, ty), hold)
            w = min(s.width, rng.choice((320, 480, 640, 800, s.width)))
            h = min(s.height, rng.choice((240, 360, 480, 600, s.height)))
            wx, wy = s.random_rect(w, h)
            yield from self._update([(wx, wy, w, h, rng.uniform(0.2, 0.7))], _log_uniform(rng, 0.05, 0.4),
                                    "window_redraw")
            self.spent += hold

    def redraw(self, seconds: float) -> Iterator[Step]:
        s, rng = self.screen, self.rng
        fps = rng.choices((1, 2, 4, 8, 15, 25), weights=(3, 3, 3, 2, 1, 0.5))[0]
        share = rng.choices((0.1, 0.25, 0.5, 1.0), weights=(3, 3, 2, 1))[0]
        density = _log_uniform(rng, 0.03, 0.6)
        budget = rng.uniform(0.5, 6) * 2 ** 20          # raw screen bytes this activity may change
        took, first, spent_bytes = 0.0, True, 0
        while took < seconds and spent_bytes < budget:
            gap = rng.uniform(0.7, 1.3) / fps
            w, h = max(8, int(s.width * share)), max(8, int(s.height * share))
            x, y = s.random_rect(w, h)
            busy = rng.uniform(0.3, 1.0)
            spent_bytes += int(w * h * busy * density * 2)
            yield from self._update([(x, y, w, h, busy)], density, "redraw" if first else None, delay=gap)
            first = False
            took += gap
        self.spent += took

    def mode(self, size: tuple[int, int] | None = None) -> Iterator[Step]:
        s, rng = self.screen, self.rng
        width, height = size or rng.choice(SCREEN_SIZES)
        change = s.mode_change(width, height)
        s.density = rng.uniform(0.05, 0.3)
        full = s.update([(0, 0, width, height, rng.uniform(0.2, 0.6))])
        yield self._step(SERVER, (change, full), self.pace("render") + rng.uniform(0.05, 0.5), "mode_change")
        yield self._request()
        self.spent += 0.5

    def idle(self, seconds: float, blink: bool) -> Iterator[Step]:
        s, rng = self.screen, self.rng
        if blink:                                      # a caret blinks for a while, then the screen blanks
            x, y = s.random_rect(8, 16)
            blink_for = min(seconds, rng.uniform(5, 60))
            period = rng.uniform(0.45, 0.6)
            took = 0.0
            while took + period < blink_for:
                took += period
                yield from self._update([(x, y, 8, 16, 1.0)], 0.5, "idle_blink", delay=period)
            seconds -= took
            self.spent += took
        self._carry += seconds
        self.spent += seconds

    # -- the session ---------------------------------------------------------------------------

    def steps(self) -> Iterator[Step]:
        """All steps after the opening; about ``plan.seconds`` long in total."""
        plan, rng = self.plan, self.rng
        self.spent = 0.0
        if plan.boot_from:                            # BIOS / text mode first, then the guest's resolution
            yield from self.redraw(rng.uniform(2, 12))
            yield from self.mode((plan.width, plan.height))
        budget = min(plan.seconds * self.weights["active"], plan.active_cap)
        names = list(ACTIVITIES)
        weights = [self.weights[n] for n in names]
        chunks = max(1, int(budget / rng.uniform(4, 12)))
        idle_total = max(0.0, plan.seconds - budget)
        active = 0.0
        while self.spent < plan.seconds:
            before = self.spent
            if active < budget:
                kind = rng.choices(names, weights=weights)[0]
                if kind == "typing":
                    yield from self.typing(rng.randint(3, 30))
                elif kind == "command":
                    yield from self.command()
                elif kind == "mouse":
                    yield from self.mouse(rng.randint(8, 80))
                elif kind == "redraw":
                    yield from self.redraw(rng.uniform(0.5, 8))
                else:
                    yield from self.mode()
                active += self.spent - before
                if rng.random() < 0.5 or active >= budget:
                    pause = min(plan.seconds - self.spent,
                                rng.expovariate(1.0) * idle_total / chunks + rng.uniform(0.3, 3))
                    if pause > 0:
                        yield from self.idle(pause, rng.random() < self.weights["blink"])
            else:
                yield from self.idle(plan.seconds - self.spent, rng.random() < self.weights["blink"])
        if self._carry:                               # idle at the end: the close comes after it
            yield Step(CLIENT, rfb.update_request(True, 0, 0, self.screen.width, self.screen.height), self._carry)
            self._carry = 0.0


def opening(screen: FastScreen, pace: Pace, token: str) -> list[Step]:
    """The MKS opening (token, ServerInit, client set-up, first full update) with cursor state."""
    steps = rfb.mks_opening(screen, pace, token)
    first = steps[3]
    return steps[:3] + [replace(first, data=(screen.cursor_state(),) + tuple(first.data))] + steps[4:]
