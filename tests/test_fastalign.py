"""The C transcription of the dialogue decoder's dynamic programmes (``infer/dialogue/_fastalign.c``)
against their definition in Python (``align._client_align_py``, ``align._server_align_py``).

Both must give the same parses bit for bit: the same log-likelihoods (compared with ``==``, not
approximately), the same reading of every record, the same outcome of every login, on random
record shapes (sizes the grammar pins down, sizes it does not, CBC intervals, long brute-force-like
runs past the alignment's band, TLS 1.3 tickets, mid-stream decoding) and on every session of the
bundled samples.
"""

from __future__ import annotations

import importlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902 import analysis
from dissect.port902.infer.dialogue import align, fastalign
from dissect.port902.infer.dialogue.grammar import TEMPLATES
from dissect.port902.infer.dialogue.observe import Obs, tls1_observations

decode = importlib.import_module("dissect.port902.infer.dialogue.decode")  # the package exports a function of that name
fast = fastalign.load()
if fast is None and os.environ.get("CI") and not os.environ.get("DISSECT902_PURE_PYTHON"):
    raise RuntimeError("the dialogue decoder's C code (_fastalign) was not built; CI must build it")
pytestmark = pytest.mark.skipif(fast is None, reason="_fastalign not built (no compiler?)")

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# sizes the grammar gives exactly (replies, THUMBPRINT, PROXY, the 264-byte NFC message) and
# line sizes around them, so that the alignments have real choices to make
PINNED = [8, 9, 11, 13, 14, 16, 19, 20, 22, 23, 27, 29, 33, 37, 38, 51, 65, 101, 264]


def _shape(records: list[tuple[int, int, int]]) -> list[Obs]:
    """(direction, lo, width) -> observations with their runs, as tls1_observations numbers them."""
    seen, out = [0, 0], []
    for i, (d, lo, width) in enumerate(records):
        out.append(Obs(float(i), i + 1, d, lo, lo + width, seen[1 - d]))
        seen[d] += 1
    return out


def _parse_view(p):
    if p is None:
        return None
    return (p.template.name, p.loglik, p.commands, list(p.logins), p.handoff,
            [(s.obs.frame, tuple(t.name for t in s.tokens), s.note) for s in p.steps])


def _both(fn):
    """fn() with the C code, then with the Python definition."""
    saved = align._FAST
    try:
        align._FAST = fast
        with_c = fn()
        align._FAST = None
        with_py = fn()
    finally:
        align._FAST = saved
    return with_c, with_py


def _check_shape(obs: list[Obs], tls13: bool, handoff: str = "none", midway: bool = False) -> None:
    client = [o for o in obs if o.direction == 0]
    for t in TEMPLATES:
        c = fastalign.client_align(fast, t, client, midway)
        p = align._client_align_py(t, client, midway)
        assert c == p, (t.name, obs)
        got = _both(lambda t=t: _parse_view(align._align(t, obs, tls13, handoff, None, midway)))
        assert got[0] == got[1], (t.name, obs)


record = st.tuples(st.sampled_from([0, 1]),
                   st.one_of(st.sampled_from(PINNED), st.integers(1, 3000), st.integers(6, 300)),
                   st.sampled_from([0, 0, 0, 15]))


@settings(max_examples=300, deadline=None)
@given(st.lists(record, min_size=1, max_size=30), st.booleans(), st.sampled_from(["none", "tls2", "clear"]))
def test_random_shapes(records, tls13, handoff):
    _check_shape(_shape(records), tls13, handoff)


@settings(max_examples=60, deadline=None)
@given(st.lists(record, min_size=4, max_size=24))
def test_midway_shapes(records):
    _check_shape(_shape(records), False, "none", midway=True)


def test_long_runs_past_the_band():
    """Brute-force-like sessions (USER / PASS / 331 / 530 over and over) and long garbage: the
    band, the pipelined records and the missing replies at the end."""
    rng = random.Random(902)
    for n in (60, 150, 400):
        login = []
        for _ in range(n // 4):
            name = rng.randint(1, 12)
            login += [(0, 7 + name, 0), (1, 29 + name, 0), (0, 7 + rng.randint(1, 20), 0), (1, 22, 0)]
        if rng.random() < 0.5:
            login.insert(rng.randrange(len(login)), (1, 1500, 0))
        _check_shape(_shape(login[:n]), rng.random() < 0.5)
        garbage = [(rng.randint(0, 1), rng.randint(1, 3000), rng.choice([0, 15])) for _ in range(n)]
        _check_shape(_shape(garbage), True)


def test_every_sample_session_decodes_alike():
    files = sorted(p for p in list(SAMPLES.glob("*")) + list(SAMPLES.glob("doctor/*"))
                   if p.suffix in (".pcap", ".pcapng"))
    assert files
    compared = 0
    for f in files:
        result = analysis.analyze(f, observers=[])
        for rec in result.sessions:
            obs, tls13 = tls1_observations(rec)
            if not any(o.direction == 0 for o in obs):
                continue
            shape = tuple((o.direction, o.lo, o.hi, o.run) for o in obs[:decode.MAX_OBS])

            def run(shape=shape, tls13=tls13):
                d = decode._decode_shape.__wrapped__(shape, tls13, "tls2", None)
                return [_parse_view(p) for p in d.parses], d.posterior

            got = _both(run)
            assert got[0] == got[1], (f.name, rec.uid)
            compared += 1
    assert compared >= 20


def test_bad_arguments_raise_not_crash():
    with pytest.raises(TypeError):
        fast.server_align([("x", (), 0.0)], [], [], [], [], [], [], False, (12, 4, 3, -1.0, -1.0, -1.0))
    with pytest.raises(ValueError):
        fast.server_align([], [1], [], [], [], [], [], False, (12, 4, 3, -1.0, -1.0, -1.0))
    with pytest.raises(ValueError):  # more exact sizes than the C model holds
        fast.server_align([(((0, 1, 9, tuple(range(40)), 0.5, False),), (False,), 0.0)], [5], [5], [0], [0.0],
                          [-1.0], [-1.0], False, (12, 4, 3, -1.0, -1.0, -1.0))
    with pytest.raises(ValueError):
        fast.program([(0, 0, 0, 5)], [])
    with pytest.raises((TypeError, ValueError)):
        fast.client_align("not a program", [1], [1], [0], [0.0], 0.0)
