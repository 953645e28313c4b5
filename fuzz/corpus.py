"""Seed corpus from ``samples/`` and a byte-level mutator (AFL-style havoc steps).

``seeds(target)`` returns a list of byte strings for a target: whole capture files for the
capture and analyze targets, per-direction TCP payload streams of the samples' authd
connections for tls/authd/nfc/pipeline, UDP 53 and UDP 902 payloads for dns/heartbeat.
"""

from __future__ import annotations

import gzip
import random
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
MAX_FILE_SEED = 300_000  # larger sample files are cut (a cut capture is an input too)
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x3FFF, 0x4000)


def _sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*") if p.suffix in (".pcap", ".pcapng"))


@lru_cache(maxsize=None)
def _files() -> tuple[bytes, ...]:
    out = []
    for p in _sample_files():
        data = p.read_bytes()
        out.append(data[:MAX_FILE_SEED])
    small = min(out, key=len)
    out.append(gzip.compress(small))  # the gzip path of the reader
    return tuple(out)


@lru_cache(maxsize=None)
def _streams() -> dict[str, tuple[bytes, ...]]:
    from dissect.port902.io.capture import IPPROTO_TCP, IPPROTO_UDP, CaptureReader, Selection

    tcp: dict[tuple, bytearray] = {}
    dns, hb = [], []
    for p in _sample_files():
        sel = Selection(udp_ports={53, 902})
        with CaptureReader(p, sel) as r:
            for pkt in r:
                if pkt.proto == IPPROTO_TCP and pkt.payload:
                    key = (p.name, pkt.src, pkt.sport, pkt.dst, pkt.dport)
                    buf = tcp.setdefault(key, bytearray())
                    if len(buf) < 20_000:
                        buf += pkt.payload
                elif pkt.proto == IPPROTO_UDP:
                    if 53 in (pkt.sport, pkt.dport) and len(dns) < 400:
                        dns.append(pkt.payload)
                    elif 902 in (pkt.sport, pkt.dport) and len(hb) < 100:
                        hb.append(pkt.payload)
    streams = sorted({bytes(b) for b in tcp.values()}, key=lambda b: (len(b), b))
    # keep a spread of sizes, not hundreds of near-identical console streams
    if len(streams) > 150:
        step = len(streams) / 150
        streams = [streams[int(i * step)] for i in range(150)]
    return {"tcp": tuple(streams), "dns": tuple(sorted(set(dns))), "heartbeat": tuple(sorted(set(hb)))}


def seeds(target: str) -> list[bytes]:
    if target in ("capture_c", "capture_python", "analyze"):
        return list(_files())
    s = _streams()
    if target in ("dns", "heartbeat"):
        return list(s[target]) or [b"\0" * 12]
    return [bytes([n]) + body for n, body in enumerate(s["tcp"])]  # first byte: how to cut it


def mutate(data: bytes, rng: random.Random, others: list[bytes] | None = None, max_len: int = 1 << 20) -> bytes:
    """One to eight havoc steps on ``data``."""
    b = bytearray(data or b"\0")
    for _ in range(1 + int(rng.random() * 8)):
        op = rng.randrange(9)
        n = len(b)
        if n == 0:
            b = bytearray(rng.randbytes(rng.randrange(1, 64)))
            continue
        i = rng.randrange(n)
        if op == 0:  # flip a bit
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # an interesting byte
            b[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x0A, 0x0D, 0x20))
        elif op == 2:  # an interesting 16/32-bit value, either byte order
            width = rng.choice((2, 4))
            v = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            b[i:i + width] = v.to_bytes(width, rng.choice(("big", "little")))
        elif op == 3:  # random bytes
            k = rng.randrange(1, 17)
            b[i:i + k] = rng.randbytes(k)
        elif op == 4:  # delete a block
            del b[i:i + rng.randrange(1, min(n, 256) + 1)]
        elif op == 5:  # duplicate a block
            k = rng.randrange(1, min(n - i, 512) + 1)
            j = rng.randrange(n)
            b[j:j] = b[i:i + k]
        elif op == 6:  # truncate
            del b[max(1, i):]
        elif op == 7 and others:  # splice in a piece of another seed
            o = rng.choice(others)
            if o:
                j = rng.randrange(len(o))
                b[i:i + rng.randrange(1, 256)] = o[j:j + rng.randrange(1, 512)]
        else:  # add or subtract a small number from a byte
            b[i] = (b[i] + rng.choice((-1, 1, -16, 16))) & 0xFF
    if len(b) > max_len:
        del b[max_len:]
    return bytes(b)
