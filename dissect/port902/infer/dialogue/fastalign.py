"""Driving the C transcription (``_fastalign.c``) of ``align``'s two dynamic programmes.

``align`` is the definition; the C code repeats its arithmetic in the same order and its
tie-breaking, so both give the same parses bit for bit (tests/test_fastalign.py compares them
on random record shapes).  It is optional like the capture engine's: ``setup.py`` builds it
when a compiler is there, ``DISSECT902_PURE_PYTHON=1`` turns it off.  Python passes numbers in
and turns the indices that come back into its own tokens.
"""

from __future__ import annotations

import os
from types import ModuleType

API_VERSION = 1  # the extension's API_VERSION this module speaks


def load() -> ModuleType | None:
    """The extension when it is built, current and not turned off; else None (pure Python)."""
    if os.environ.get("DISSECT902_PURE_PYTHON", "").strip() not in ("", "0"):
        return None
    try:
        from . import _fastalign  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - depends on the build
        return None
    return _fastalign if getattr(_fastalign, "API_VERSION", None) == API_VERSION else None


def model(size) -> tuple:
    """A size model as the C code reads it: a ``grammar.Size`` or an ``align._Mix`` of two."""
    a = getattr(size, "a", None)
    if a is not None:
        return (1, model(a), model(size.b), float(size.p))
    got = _MODELS.get(size)
    if got is None:
        if len(_MODELS) >= 4096:
            _MODELS.clear()
        got = _MODELS[size] = (0, size.lo, size.hi, size.exact, float(size.p_exact), bool(size.log))
    return got


_MODELS: dict = {}  # Size -> its model (Sizes are frozen and hash once)
_LAST: dict[str, tuple] = {}  # "client" | "server" -> (the observation list, its columns): every template reads the same


def _columns(obs: list, kind: str) -> tuple:
    """(lo, hi, run, ts, garbage score, ticket score) lists of ``obs``, for the C code."""
    got = _LAST.get(kind)
    if got is not None and got[0] is obs:
        return got[1]
    from . import align as a

    score_of = a._record_score
    cols = ([o.lo for o in obs], [o.hi for o in obs], [o.run for o in obs], [float(o.ts) for o in obs],
            [score_of(0, o.lo, o.hi) for o in obs], [score_of(1, o.lo, o.hi) for o in obs] if kind == "server" else [])
    _LAST[kind] = (obs, cols)
    return cols


_PROGRAMS: dict[tuple[int, bool], tuple] = {}  # (id(template), midway) -> (template, expansions, program)


def program(fast: ModuleType, t, midway: bool, expansions: dict):
    """A template's NFA expansions (``align._expansions``) compiled for ``client_align``: state 0
    is the start, the others in ``expansions``' order (that of the states' tuples, as Python's
    ``max`` over (score, state) needs)."""
    got = _PROGRAMS.get((id(t), midway))
    if got is not None and got[0] is t and got[1] is expansions:
        return got[2]
    from .align import _START

    order = list(expansions)
    assert order[0] == _START
    index = {s: i for i, s in enumerate(order)}
    states, exps = [], []
    for s in order:
        split = s != _START and t.slots[s[0]].group[s[1]].split
        can_end = s != _START and s[0] >= t.required
        states.append((int(split), int(can_end), len(exps), len(expansions[s])))
        for ns, _path, cost, edge, sizes in expansions[s]:
            exps.append((index[ns], float(cost), float(edge), tuple(model(z) for z in sizes)))
    prog = fast.program(states, exps)
    if len(_PROGRAMS) >= 64:  # only templates made on the fly (tests) come and go
        _PROGRAMS.clear()
    _PROGRAMS[(id(t), midway)] = (t, expansions, prog)
    return prog


def client_align(fast: ModuleType, t, obs: list, midway: bool):
    """``align._client_align`` in C: (loglik, path) or None."""
    from . import align as a  # (imported by now: align imports this module)

    expansions = a._expansions(t, midway)
    prog = program(fast, t, midway, expansions)
    lo, hi, run, _ts, garbage, _ticket = _columns(obs, "client")
    got = fast.client_align(prog, lo, hi, run, garbage, a.CONTINUED)
    if got is None:
        return None
    score, steps = got
    states = list(expansions)
    path: list = []
    for before, code in steps:
        if code == -1:
            path.append([])
        elif code == -2:
            path.append("cont")
        else:
            path.append([tk for _, tk in expansions[states[before]][code][1]])
    return score, path


_KINDS = ("garbage", "ticket", "reply", "span")


def server_align(fast: ModuleType, replies: list, obs: list, tls13: bool):
    """``align._server_align`` in C: (loglik, per record (kind, reply indices, chosen tokens), replies answered) or None."""
    from . import align as a

    spec = [(tuple(model(alt[1]) for alt in alts), tuple(bool(alt[0].split) for alt in alts), float(ts))
            for alts, ts in replies]
    lo, hi, run, ts, garbage, ticket = _columns(obs, "server")
    got = fast.server_align(spec, lo, hi, run, ts, garbage, ticket, tls13,
                            (a.BAND, a.MAX_TICKETS, a.PER_RECORD_TOKENS, a.SKIPPED_REPLY, a.MISSING_REPLY,
                             a.SHARED_RECORD))
    if got is None:
        return None
    score, items, answered = got
    out: list = []
    for item in items:
        if item is None:
            out.append(None)
            continue
        kind, first, end, choice = item
        if kind == 2:  # the choice's index: the last reply's alternative varies fastest (align._carry)
            picks = []
            for y in range(end - 1, first - 1, -1):
                alts = replies[y][0]
                choice, pick = divmod(choice, len(alts))
                picks.append(alts[pick])
            opt = tuple(reversed(picks))
        elif kind == 3:
            opt = (replies[first][0][choice],)
        else:
            opt = ()
        out.append((_KINDS[kind], tuple(range(first, end)), opt))
    return score, out, answered
