"""Rectangle grammars of RFB encodings that carry no overall length (proto stage, beside rfb.py).

Each walker is a generator over one rectangle: it yields ``n > 0`` to receive the next ``n``
bytes (a header: subencoding, counts, palette size) or ``n < 0`` to have ``-n`` bytes skipped
(pixel data, never held), and returns when the rectangle ends.  The parser in :mod:`.rfb` drives
it over whatever chunking the stream arrives in, so memory per stream is a few bytes.

- Hextile, RFC 6143 §7.7.4: 16x16 tiles, a subencoding mask per tile.
- TRLE, RFC 6143 §7.7.5: 16x16 tiles, subencodings raw / solid / packed palette / plain RLE /
  palette RLE, in CPIXELs (3 bytes for 32-bit true colour whose colours fit in 3 bytes).
- Tight (TightVNC protocol spec, as libvncserver and TigerVNC implement it): a compression
  control byte; fill (one TPIXEL), JPEG / PNG (compact length + data) or basic compression
  (optional filter: copy, palette, gradient) whose data is raw under 12 bytes and otherwise a
  compact length + zlib data.  The lengths are explicit, so no zlib stream is inflated.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

Walker = Generator[int, Any, None]

TILE = 16
TIGHT_MIN_TO_COMPRESS = 12


class RectWeird(Exception):
    """A rectangle's bytes break its encoding's grammar."""


def _bpp(pf) -> int:
    return max(1, (pf.bits_per_pixel if pf else 32) // 8)


def cpixel_size(pf) -> int:
    """RFC 6143 §7.7.5: 3 bytes when 32 bpp true colour with depth <= 24 (all colour bits fit)."""
    if pf is None:
        return 4
    if pf.true_colour and pf.bits_per_pixel == 32 and pf.depth <= 24:
        top = max((m.bit_length() + s) for m, s in ((pf.red_max, pf.red_shift), (pf.green_max, pf.green_shift),
                                                    (pf.blue_max, pf.blue_shift)))
        low = min(s for s in (pf.red_shift, pf.green_shift, pf.blue_shift))
        if top <= 24 or low >= 8:
            return 3
    return _bpp(pf)


def tpixel_size(pf) -> int:
    """Tight: 3 bytes for 32 bpp, depth 24, 8 bits per colour (libvncserver's 'cutZeros')."""
    if pf is not None and pf.true_colour and pf.bits_per_pixel == 32 and pf.depth == 24 \
            and pf.red_max == pf.green_max == pf.blue_max == 0xFF:
        return 3
    return _bpp(pf)


def _tiles(w: int, h: int, size: int):
    for ty in range(0, h, size):
        th = min(size, h - ty)
        for tx in range(0, w, size):
            yield min(size, w - tx), th


def hextile(w: int, h: int, pf) -> Walker:
    bpp = _bpp(pf)
    for tw, th in _tiles(w, h, TILE):
        sub = (yield 1)[0]
        if sub & 1:  # Raw: the other bits are ignored
            yield -(tw * th * bpp)
            continue
        fixed = (bpp if sub & 2 else 0) + (bpp if sub & 4 else 0)
        if sub & 8:
            if fixed:
                yield -fixed
            n = (yield 1)[0]
            if n:
                yield -(n * ((bpp if sub & 16 else 0) + 2))
        elif fixed:
            yield -fixed


def _run_length() -> Generator[int, Any, int]:
    """TRLE run length: bytes of 255 then one below 255; the length is their sum + 1."""
    total = 1
    while True:
        v = (yield 1)[0]
        total += v
        if v != 255:
            return total


def _trle_tiles(w: int, h: int, pf, tile: int) -> Walker:
    cp = cpixel_size(pf)
    for tw, th in _tiles(w, h, tile):
        pixels = tw * th
        sub = (yield 1)[0]
        if sub == 0:
            yield -(pixels * cp)
        elif sub == 1:
            yield -cp
        elif 2 <= sub <= 16:
            bits = 1 if sub == 2 else 2 if sub <= 4 else 4
            yield -(sub * cp + ((tw * bits + 7) // 8) * th)
        elif sub == 128:
            left = pixels
            while left > 0:
                yield -cp
                left -= yield from _run_length()
            if left < 0:
                raise RectWeird(f"TRLE plain RLE runs overrun the {tw}x{th} tile")
        elif sub >= 130:
            yield -((sub - 128) * cp)
            left = pixels
            while left > 0:
                idx = (yield 1)[0]
                left -= (yield from _run_length()) if idx & 128 else 1
            if left < 0:
                raise RectWeird(f"TRLE palette RLE runs overrun the {tw}x{th} tile")
        else:
            raise RectWeird(f"TRLE subencoding {sub} is not defined")


def trle(w: int, h: int, pf) -> Walker:
    return _trle_tiles(w, h, pf, TILE)


def _compact_length() -> Generator[int, Any, int]:
    b0 = (yield 1)[0]
    n = b0 & 0x7F
    if b0 & 0x80:
        b1 = (yield 1)[0]
        n |= (b1 & 0x7F) << 7
        if b1 & 0x80:
            n |= (yield 1)[0] << 14
    return n


def tight(w: int, h: int, pf) -> Walker:
    tp = tpixel_size(pf)
    ctl = (yield 1)[0] >> 4
    if ctl == 8:  # FillCompression
        yield -tp
        return
    if ctl in (9, 10):  # JpegCompression, PngCompression (TightPNG)
        n = yield from _compact_length()
        if n:
            yield -n
        return
    if ctl > 10:
        raise RectWeird(f"Tight compression control {ctl:#x} is not defined")
    row_bytes = w * tp
    if ctl & 4:  # explicit filter
        flt = (yield 1)[0]
        if flt == 1:  # palette
            colours = (yield 1)[0] + 1
            yield -(colours * tp)
            row_bytes = (w + 7) // 8 if colours == 2 else w
        elif flt not in (0, 2):
            raise RectWeird(f"Tight filter {flt} is not defined")
    size = row_bytes * h
    if size < TIGHT_MIN_TO_COMPRESS:
        if size:
            yield -size
        return
    n = yield from _compact_length()
    if n:
        yield -n


WALKERS = {5: hextile, 15: trle, 7: tight, -260: tight}
