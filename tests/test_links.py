"""903 -> 902 pairing: indexed by (client, server, time), same answer as the plain scan, and
time linear in the number of sessions (issue 13)."""

import gc
import time
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902.infer.links import find_handoffs


def rec(uid, client, server, port, start, end, state="closed"):
    return SimpleNamespace(uid=uid, client_ip=client, server_ip=server, server_port=port, start=start, end=end,
                           state=state, first_frame=int(start * 10), server=f"{server}:{port}",
                           handoff_from=None, handoff_to=None, handoff_gap_s=None)


def reference(sessions, window_s=10.0):
    """The pairing as it was specified: scan every 902 session of the client."""
    controls = sorted((s for s in sessions if s.server_port == 903 and s.state not in ("no_answer", "refused")),
                      key=lambda s: s.start)
    targets = sorted((s for s in sessions if s.server_port == 902 and s.state not in ("no_answer", "refused")),
                     key=lambda s: s.start)
    claimed, out = set(), []
    for c in controls:
        cands = [t for t in targets if t.client_ip == c.client_ip and t.uid not in claimed
                 and t.start >= c.start and t.start - c.end <= window_s]
        if not cands:
            continue
        same = [t for t in cands if t.server_ip == c.server_ip]
        t = (same or cands)[0]
        claimed.add(t.uid)
        out.append((c.uid, t.uid, bool(same)))
    return out


session_specs = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["s1", "s2"]),
                                   st.sampled_from([902, 903, 443]), st.integers(0, 60), st.integers(0, 15),
                                   st.sampled_from(["closed", "no_answer", "refused", "reset"])),
                         max_size=40)


@settings(max_examples=100, deadline=None)
@given(session_specs)
def test_indexed_pairing_matches_the_scan(specs):
    sessions = [rec(f"u{i}", c, s, p, float(t), float(t + d), state) for i, (c, s, p, t, d, state) in enumerate(specs)]
    got = [(h.from_session, h.to_session, h.same_server) for h in find_handoffs(sessions)]
    assert got == reference(sessions)
    for h in find_handoffs([rec(x.uid, x.client_ip, x.server_ip, x.server_port, x.start, x.end, x.state)
                            for x in sessions]):
        assert h.gap_s <= 10.0


def _pairs(n):
    out = []
    for k in range(n):
        t = k * 2.0
        out.append(rec(f"c{k}", "10.0.0.1", "10.0.0.2", 903, t, t + 0.1))
        out.append(rec(f"x{k}", "10.0.0.1", "10.0.0.3", 902, t + 0.2, t + 0.3))
        out.append(rec(f"t{k}", "10.0.0.1", "10.0.0.2", 902, t + 0.5, t + 1.0))
    return out


def test_pairing_one_client_many_sessions_is_linear():
    def took(n):
        sessions = _pairs(n)
        gc.collect()
        gc.disable()  # a collection landing in one of the timed runs is noise, not the algorithm's cost
        try:
            t0 = time.perf_counter()
            hs = find_handoffs(sessions)
            dt = time.perf_counter() - t0
        finally:
            gc.enable()
        assert len(hs) == n and all(h.same_server for h in hs)
        assert [h.to_session for h in hs] == [f"t{k}" for k in range(n)]
        return dt

    took(2000)  # warm-up
    small = min(took(10_000) for _ in range(3))
    big = min(took(20_000) for _ in range(3))
    assert big / small < 3.0, (small, big)
