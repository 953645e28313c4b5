"""Per-session features for telling MKS, NFC, SOAP and VMXARGS apart (stage 4).

What stays visible after the TLS upgrade is richer than sizes and times
(design.md §1): the number of handshakes, whether the stream went on in clear, the
record-layer headers, and — because authd writes one line per record — the
*lengths of the authd lines* inside TLS #1 (``CONNECT <vmx path> mks`` is long,
``PROXY vpxa-nfcssl`` is short, VDDK's ``BANNER`` is answered by the 150-170 byte
greeting).  This module turns a session's TLS records into *messages* (records a
peer wrote together, with the cipher overhead taken off) and computes small named
features from them, each a function of one :class:`View`.

Cipher overhead is derived from the negotiated suite, not fitted: AEAD adds its
nonce and tag (TLS 1.2 GCM/CCM 24 bytes, ChaCha20 16, TLS 1.3 17 with the inner
content type); CBC adds the IV (TLS ≥ 1.1), the MAC and on average half a block of
padding.  TLS 1.3's encrypted handshake, the client's Finished and the server's
session tickets travel as application-data records; they are recognised by their
place in the exchange (authd's client always speaks first) and left out.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

from ..net.flows import C2S, S2C
from ..proto import tls as tlsmod

SMALL = 64  # plaintext bytes: keystrokes, pointer events, update requests, short authd lines
LARGE = 1024
IDLE_S = 1.0


@dataclass(frozen=True, slots=True)
class Message:
    """What one peer wrote at once: consecutive same-direction records in one packet."""

    ts: float
    frame: int
    direction: int
    size: int  # estimated plaintext bytes
    records: int
    handshake: int
    largest: int = 0  # the largest single record in it (plaintext estimate)


def overhead(hs) -> tuple[int, int]:
    """(fixed bytes, block size) a record adds to its plaintext under this handshake's cipher."""
    if hs is None or hs.server_hello is None:
        return 20, 0  # unknown: an average AEAD-ish overhead
    name = tlsmod.cipher_name(hs.server_hello.cipher_suite)
    version = hs.server_hello.selected_version
    if version >= 0x0304:
        return 17, 0
    if "GCM" in name or "CCM" in name:
        return 24, 0
    if "CHACHA20" in name:
        return 16, 0
    block = 8 if ("3DES" in name or "DES" in name or "IDEA" in name) else 16
    mac = 48 if name.endswith("SHA384") else 32 if name.endswith("SHA256") else 16 if name.endswith("MD5") else 20
    iv = block if version >= 0x0302 else 0
    return iv + mac, block


def plaintext(length: int, ov: tuple[int, int]) -> int:
    fixed, block = ov
    return max(0, length - fixed - block // 2)


def messages(rec) -> list[Message]:
    """The session's application data as messages, TLS 1.3 handshake traffic left out."""
    ovs = {h.index: overhead(h) for h in rec.handshakes}
    tls13 = {h.index for h in rec.handshakes if h.server_hello is not None and h.server_hello.selected_version >= 0x0304}
    out: list[Message] = []
    phase: dict[int, int] = {}  # TLS 1.3 per handshake: 0 server flight, 1 after client Finished, 2 data
    for ts, frame, d, ctype, length, hs in rec.records():
        if ctype != 23:
            continue
        if hs in tls13:
            p = phase.get(hs, 0)
            if p == 0:
                if d == C2S:
                    phase[hs] = 1  # the client's Finished
                continue
            if p == 1:
                if d == S2C:
                    continue  # session tickets before the client's first request
                phase[hs] = 2
        size = plaintext(length, ovs.get(hs, (20, 0)))
        last = out[-1] if out else None
        if last is not None and last.direction == d and last.frame == frame and last.handshake == hs:
            out[-1] = Message(last.ts, frame, d, last.size + size, last.records + 1, hs, max(last.largest, size))
        else:
            out.append(Message(ts, frame, d, size, 1, hs, size))
    return _drop_closing_alerts(out, tls13 | {0})


def _drop_closing_alerts(msgs: list[Message], opaque: set[int]) -> list[Message]:
    """TLS 1.3 (and an unknown version) sends close_notify as an application-data record of
    2 plaintext bytes: the last tiny message of a direction is that alert, not a command."""
    drop = set()
    for d in (C2S, S2C):
        for i in range(len(msgs) - 1, -1, -1):
            if msgs[i].direction == d:
                if msgs[i].handshake in opaque and msgs[i].size <= 2:
                    drop.add(i)
                break
    return [m for i, m in enumerate(msgs) if i not in drop] if drop else msgs


@dataclass
class View:
    """A session seen through its messages, split by handshake."""

    rec: object
    msgs: list[Message]
    tls1: list[Message] = field(default_factory=list)
    later: list[Message] = field(default_factory=list)  # TLS #2 and beyond, or mid-stream data

    @classmethod
    def of(cls, rec, as_handoff: bool = False) -> "View":
        """``as_handoff``: judge what follows the first visible handshake as post-hand-off traffic
        even though no protected data preceded it (a capture that began right at the hand-off)."""
        msgs = messages(rec)
        v = cls(rec, msgs)
        if as_handoff and rec.handshakes:
            v.later = [m for m in msgs if m.ts >= rec.handshakes[0].ts]
        elif rec.handshakes and seen_from_start(rec):
            v.tls1 = [m for m in msgs if m.handshake == 1]
            v.later = [m for m in msgs if m.handshake >= 2]
        elif rec.handshakes:
            start = rec.handshakes[0].ts
            if data_before_handshake(rec):
                # protected data came before the first visible handshake: that handshake is a
                # hand-off (TLS #2), and everything from it on is what follows the hand-off (by time:
                # a side whose hello preceded the capture files its records under no handshake)
                v.later = [m for m in msgs if m.ts >= start]
            else:
                # nothing before it: the capture began just before TLS #1 (the greeting was missed)
                v.tls1 = [m for m in msgs if m.handshake <= 1 and m.ts >= start]
                v.later = [m for m in msgs if m.handshake >= 2]
        else:
            v.later = msgs
        return v

    def side(self, msgs: list[Message], d: int) -> list[Message]:
        return [m for m in msgs if m.direction == d]


def seen_from_start(rec) -> bool:
    """The capture holds the connection's start: its SYN, or at least the server's greeting."""
    return rec.banner is not None or rec.roles_from == "handshake"


def data_before_handshake(rec) -> bool:
    """Application data was captured before the first visible handshake began."""
    if not rec.handshakes:
        return False
    start = rec.handshakes[0].ts
    return any(ct == 23 and ts < start for ts, _, _, ct, _, _ in rec.records())


def _regularity(sizes: list[int]) -> float | None:
    """Share of messages within 10% (at least 8 bytes) of the median size: fixed-size protocol
    requests (NFC's 60-byte AIO IO, 264-byte messages) score near 1, HTTP requests lower."""
    if len(sizes) < 4:
        return None
    med = statistics.median(sizes)
    tol = max(8.0, 0.1 * med)
    return sum(1 for x in sizes if abs(x - med) <= tol) / len(sizes)


# -- the features: name -> function(View) -> value --------------------------------------------

def _sizes(msgs: list[Message]) -> list[int]:
    return [m.size for m in msgs]


def _last(msgs: list[Message]) -> int | None:
    return msgs[-1].size if msgs else None


def _first(msgs: list[Message]) -> int | None:
    return msgs[0].size if msgs else None


def _gaps(msgs: list[Message]) -> list[float]:
    return [b.ts - a.ts for a, b in zip(msgs, msgs[1:])]


def _share(values: list[int], pred: Callable[[int], bool]) -> float | None:
    return sum(1 for v in values if pred(v)) / len(values) if values else None


def _alternation(msgs: list[Message]) -> float | None:
    """Share of messages answered by the other side before the same side writes again."""
    if len(msgs) < 2:
        return None
    return sum(1 for a, b in zip(msgs, msgs[1:]) if a.direction != b.direction) / (len(msgs) - 1)


def _burstiness(gaps: list[float]) -> float | None:
    """Coefficient of variation of the gaps: ~0 metronomic, ~1 random, >1 bursts and pauses."""
    if len(gaps) < 3:
        return None
    mean = statistics.fmean(gaps)
    return statistics.pstdev(gaps) / mean if mean > 0 else 0.0


def _full_share(v: View) -> float | None:
    later = {m.handshake for m in v.later}
    lengths = [ln for _, _, d, ct, ln, hs in v.rec.records() if ct == 23 and d == S2C and hs in later]
    return sum(1 for ln in lengths if ln >= 16384) / len(lengths) if lengths else None


def _later_client(v: View) -> list[Message]:
    return v.side(v.later, C2S)


def _later_server(v: View) -> list[Message]:
    return v.side(v.later, S2C)


FEATURES: dict[str, Callable[[View], object]] = {  # name -> function; column docs: model.schema.FEATURE_COLUMNS
    "handshakes": lambda v: len(v.rec.handshakes),
    "continued_in_clear": lambda v: v.rec.continued_in_clear,
    "nfc_messages": lambda v: sum(v.rec.nfc_message_types.values()) + sum(v.rec.nfc_aio_types.values()),
    "midstream": lambda v: not seen_from_start(v.rec),
    "handoff_seen_midway": lambda v: data_before_handshake(v.rec),
    "tls1_client_msgs": lambda v: len(v.side(v.tls1, C2S)),
    "tls1_server_msgs": lambda v: len(v.side(v.tls1, S2C)),
    "tls1_client_first": lambda v: _first(v.side(v.tls1, C2S)),
    "tls1_client_last": lambda v: _last(v.side(v.tls1, C2S)),
    "tls1_server_last": lambda v: _last(v.side(v.tls1, S2C)),
    "tls1_server_first": lambda v: _first(v.side(v.tls1, S2C)),
    "tls1_client_max": lambda v: max(_sizes(v.side(v.tls1, C2S)), default=None),
    "tls1_server_max": lambda v: max(_sizes(v.side(v.tls1, S2C)), default=None),
    "later_client_first": lambda v: _first(_later_client(v)) if v.rec.handshakes and v.later
                           and v.later[0].handshake >= 1 else None,
    "later_client_regularity": lambda v: _regularity(_sizes(_later_client(v))),
    "later_client_max": lambda v: max(_sizes(_later_client(v)), default=None),
    "later_server_max": lambda v: max(_sizes(_later_server(v)), default=None),
    "later_client_record_max": lambda v: max((m.largest for m in _later_client(v)), default=None),
    "later_server_record_max": lambda v: max((m.largest for m in _later_server(v)), default=None),
    "later_server_full_share": lambda v: _full_share(v),
    "later_client_msgs": lambda v: len(_later_client(v)),
    "later_server_msgs": lambda v: len(_later_server(v)),
    "later_client_small_share": lambda v: _share(_sizes(_later_client(v)), lambda s: s <= SMALL),
    "later_client_median": lambda v: statistics.median(_sizes(_later_client(v))) if _later_client(v) else None,
    "later_server_large_share": lambda v: _share(_sizes(_later_server(v)), lambda s: s >= LARGE),
    "later_server_bytes_share": lambda v: (sum(_sizes(_later_server(v))) / max(1, sum(_sizes(v.later))))
                                 if v.later else None,
    "later_alternation": lambda v: _alternation(v.later),
    "later_client_rate": lambda v: (len(_later_client(v)) / max(1e-6, _later_client(v)[-1].ts - _later_client(v)[0].ts))
                          if len(_later_client(v)) > 1 else None,
    "later_idle_max_s": lambda v: max(_gaps(v.later), default=None),
    "later_idle_count": lambda v: sum(1 for g in _gaps(v.later) if g > IDLE_S),
    "later_client_burstiness": lambda v: _burstiness(_gaps(_later_client(v))),
    "duration_s": lambda v: v.rec.duration_s,
    "c2s_bytes": lambda v: v.rec.bytes[0],
    "s2c_bytes": lambda v: v.rec.bytes[1],
}


def compute(rec, as_handoff: bool = False) -> dict:
    """All features of one session record (one DataFrame row)."""
    v = View.of(rec, as_handoff)
    out = {"uid": rec.uid}
    for name, fn in FEATURES.items():
        out[name] = fn(v)
    return out
