"""Decoding a session: every template scored, the best parse per label, posteriors; mid-stream decoding.

Results are cached by record shape (sizes and directions), so repeated shapes cost one decode.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from ...net.flows import C2S
from .align import Parse, Step, _align
from .grammar import ANY, GARBAGE, MAX_OBS, TEMPLATES, Template, _loglik
from .observe import Obs, tls1_observations


@dataclass
class Decoded:
    """The decoder's answer: the best parse per label, ranked; the posterior of each label."""

    parses: list[Parse]
    posterior: dict[str, float]
    observations: int
    not_decoded: int = 0  # records past MAX_OBS

    @property
    def best(self) -> Parse | None:
        return self.parses[0] if self.parses else None

    def runner_up(self) -> Parse | None:
        best = self.best
        return next((p for p in self.parses[1:] if best is None or p.template.label != best.template.label), None)

    def inferred_dialogue(self) -> list[dict]:
        best, other = self.best, self.runner_up()
        if best is None:
            return []
        alt = {}
        if other is not None:
            for s in other.steps:
                alt[(s.obs.frame, s.obs.ts, s.obs.direction, s.obs.lo)] = \
                    f"{other.template.label}: " + (" + ".join(t.text for t in s.tokens) or "(unexplained)")
        out = []
        for s in best.steps:
            a = alt.get((s.obs.frame, s.obs.ts, s.obs.direction, s.obs.lo))
            mine = f"{best.template.label}: " + (" + ".join(t.text for t in s.tokens) or "(unexplained)")
            out.append(s.to_dict([a] if a and a != mine else []))
        return out


UNKNOWN_PRIOR = math.log(0.05)


def decode(rec, handoff: str, first_after: tuple[int, int] | None = None) -> Decoded | None:
    """Decode TLS #1 of ``rec``; ``handoff`` is what followed it ("tls2", "clear", "none") and
    ``first_after`` the plaintext interval of the client's first record in TLS #2."""
    obs, tls13 = tls1_observations(rec)
    total = len(obs)
    obs = obs[:MAX_OBS]
    if not any(o.direction == C2S for o in obs):
        return None
    # only the order of the records matters (a reply follows its command), not their times: the
    # decoding of a shape is computed once — a brute force of a thousand alike connections costs one
    shape = tuple((o.direction, o.lo, o.hi, o.run) for o in obs)
    core = _decode_shape(shape, tls13, handoff, first_after) if len(shape) <= CACHED_SHAPE \
        else _decode_shape.__wrapped__(shape, tls13, handoff, first_after)
    return _bind(core, obs, total)


def _bind(core: "Decoded", obs: list[Obs], total: int) -> "Decoded":
    """A decoding computed on a record shape, attached to the session's own records."""
    parses = [Parse(p.template, p.loglik, [Step(obs[i], st.tokens, st.note) for i, st in enumerate(p.steps)],
                    p.commands, list(p.logins), p.handoff) for p in core.parses]
    return Decoded(parses, dict(core.posterior), len(obs), total - len(obs))


CACHED_SHAPE = 64  # shapes up to this many records are remembered (LRU)

# A capture that began inside TLS #1 saw no ServerHello: the record overhead is a latent variable.
# Each hypothesis is (name, fixed bytes, block size) of a cipher family ESXi and its clients use.
OVERHEADS = (  # (name, explicit IV, MAC or tag, block size)
    ("AES-GCM (TLS 1.2)", 8, 16, 0), ("ChaCha20-Poly1305 (TLS 1.2)", 0, 16, 0), ("TLS 1.3 AEAD", 0, 17, 0),
    ("AES-CBC-SHA (TLS 1.1/1.2)", 16, 20, 16), ("AES-CBC-SHA256", 16, 32, 16), ("AES-CBC-SHA384", 16, 48, 16),
    ("AES-CBC-SHA (TLS 1.0)", 0, 20, 16),
)
MIDWAY_MIN_RECORDS = 4


def decode_midway(rec) -> tuple["Decoded", str] | None:
    """Decode application records seen before any handshake (a capture that began inside TLS #1):
    the template may be entered at any line, and the cipher's overhead is chosen among
    :data:`OVERHEADS` by likelihood.  Returns the decoding and the overhead's name, or None."""
    raw = [(ts, fr, d, ln) for ts, fr, d, ct, ln, h in rec.records() if ct == 23 and h == 0]
    raw = raw[:MAX_OBS]
    if len(raw) < MIDWAY_MIN_RECORDS or not any(d == C2S for _, _, d, _ in raw):
        return None
    best = None
    for name, iv, mac, block in OVERHEADS:
        if block and any((ln - iv) % block for _, _, _, ln in raw):
            continue  # a block cipher makes every record IV + whole blocks: this one cannot be it
        obs, seen = [], [0, 0]
        for ts, fr, d, ln in raw:
            lo, hi = (ln - iv - mac - block, ln - iv - mac - 1) if block else (ln - iv - mac, ln - iv - mac)
            if hi < 1:
                break
            obs.append(Obs(ts, fr, d, max(0, lo), hi, seen[1 - d]))
            seen[d] += 1
        else:
            shape = tuple((o.direction, o.lo, o.hi, o.run) for o in obs)
            core = _decode_shape(shape, False, "none", None, True) if len(shape) <= CACHED_SHAPE \
                else _decode_shape.__wrapped__(shape, False, "none", None, True)
            top = core.parses[0].loglik - math.log(len(OVERHEADS))
            if best is None or top > best[0]:
                best = (top, _bind(core, obs, len(obs)), name)
    return None if best is None else (best[1], best[2])


@functools.lru_cache(maxsize=1024)
def _decode_shape(shape: tuple, tls13: bool, handoff: str, first_after: tuple[int, int] | None,
                  midway: bool = False) -> Decoded:
    obs = [Obs(float(i), 0, d, lo, hi, run) for i, (d, lo, hi, run) in enumerate(shape)]
    parses = [p for t in TEMPLATES if (p := _align(t, obs, tls13, handoff, first_after, midway)) is not None]
    # the null model: every record unexplained
    null = sum(GARBAGE + _loglik([ANY], o.lo, o.hi) for o in obs) + UNKNOWN_PRIOR + math.log(1 / 3)
    by_label: dict[str, Parse] = {}
    for p in sorted(parses, key=lambda p: -p.loglik):
        by_label.setdefault(p.template.label, p)
    ranked = sorted(by_label.values(), key=lambda p: -p.loglik)
    scores = {p.template.label: p.loglik for p in ranked}
    scores["UNKNOWN"] = max(scores.get("UNKNOWN", -math.inf), null)
    top = max(scores.values())
    z = sum(math.exp(v - top) for v in scores.values())
    posterior = {k: math.exp(v - top) / z for k, v in scores.items()}
    if "UNKNOWN" not in by_label:  # the null model competes like any other label
        ranked.append(Parse(Template("UNKNOWN", "no template explains the records", (), 0, "none"), null,
                            [Step(o, ()) for o in obs]))
        ranked.sort(key=lambda p: -p.loglik)
    return Decoded(ranked, posterior, len(obs))


