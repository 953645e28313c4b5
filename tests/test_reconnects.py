"""Console reconnects (retry / moved) found by index, the same as the pairwise scan, and in
n log n for a flood of failed attempts from one client (issue 13)."""

import time
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902.infer.diagnose.context import _console_ok, _Context, _failed_attempt, is_mks
from dissect.port902.infer.diagnose.findings import OVERLAP_S, RECONNECT_WINDOW_S


def sess(uid, server, start, dur, kind):
    feature, state, ok = {"mks": ("MKS", "closed", True), "mks_fail": ("MKS", "closed", False),
                          "syn": ("NONE", "no_answer", None), "reset": ("NONE", "reset", None),
                          "nfc": ("NFC", "closed", None)}[kind]
    return SimpleNamespace(uid=uid, server_ip=server, server_port=902, start=start, end=start + dur,
                           feature=feature, connect_kind="mks" if feature == "MKS" else None, connect_ok=ok,
                           state=state, transport="tls+tls2", duration_s=dur, first_frame=int(start * 100))


def reference(by_client):
    out = {}
    for ss in by_client.values():
        ss = [s for s in ss if s.server_port in (902, 912)]
        for i, a in enumerate(ss):
            if not (is_mks(a) or _failed_attempt(a) or a.state == "reset"):
                continue
            for b in ss[i + 1:]:
                if b.start > a.end + RECONNECT_WINDOW_S:
                    break
                if b.start < a.end - OVERLAP_S or not (is_mks(b) or _failed_attempt(b)):
                    continue
                if b.server_ip == a.server_ip:
                    if _console_ok(b):
                        out[a.uid] = ("retry", a.uid, b.uid)
                        break
                    continue
                if is_mks(a):
                    out[a.uid] = ("moved", a.uid, b.uid)
                break
    return out


def indexed(by_client):
    ctx = SimpleNamespace(by_client=by_client)
    return {k: (kind, a.uid, b.uid) for k, (kind, a, b) in _Context._reconnects(ctx).items()}


specs = st.lists(st.tuples(st.sampled_from(["h1", "h2", "h3"]), st.integers(0, 200), st.integers(0, 40),
                           st.sampled_from(["mks", "mks_fail", "syn", "reset", "nfc"])), max_size=30)


@settings(max_examples=150, deadline=None)
@given(specs)
def test_indexed_reconnects_match_the_scan(rows):
    ss = sorted((sess(f"u{i}", srv, t / 4, d / 4, kind) for i, (srv, t, d, kind) in enumerate(rows)),
                key=lambda s: (s.start, s.first_frame))
    by_client = {("src", "10.0.0.1"): ss}
    assert indexed(by_client) == reference(by_client)


def test_syn_flood_from_one_client_is_not_quadratic():
    def took(n):
        ss = [sess(f"s{k}", "h1", k * 0.0001, 0.0, "syn") for k in range(n)]
        t0 = time.perf_counter()
        assert indexed({("src", "10.0.0.1"): ss}) == {}
        return time.perf_counter() - t0

    took(1000)
    small = min(took(20_000) for _ in range(2))
    big = min(took(40_000) for _ in range(2))
    assert big / small < 3.0, (small, big)
