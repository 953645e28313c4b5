"""One definition of a reconnect (infer.reconnects), read by the diagnosis and by the timeline.

The rule is tested on hand-made sessions at its boundaries, and on every bundled capture the
diagnosis' reconnect notes must be arrows of the timeline too: the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from dissect.port902 import analyze, plots
from dissect.port902.infer.reconnects import LOOKBACK, OVERLAP_S, RECONNECT_WINDOW_S, find_reconnects

SAMPLES = Path(__file__).parent.parent / "samples"


@dataclass(frozen=True)
class S:
    uid: str
    start: float
    end: float
    server_ip: str = "10.0.0.1"
    server_port: int = 902
    client_ip: str = "10.9.9.9"
    state: str = "closed"
    login_outcome: str = "none"
    feature: str = "MKS"
    transport: str = "tls+tls2"
    connect_kind: str | None = None
    connect_target: str | None = None
    connect_ok: bool | None = None
    duration_s: float = 0.0


def kinds(sessions, **kw):
    return [(r.kind, r.earlier.uid, r.later.uid) for r in find_reconnects(sessions, **kw)]


def test_console_on_another_host_is_moved_on_the_same_host_reopened():
    a = S("a", 0, 100)
    assert kinds([a, S("b", 101, 200, server_ip="10.0.0.2")]) == [("moved", "a", "b")]
    assert kinds([a, S("b", 101, 200)]) == [("reopened", "a", "b")]


def test_window_and_overlap_are_the_boundaries():
    a = S("a", 0, 100)
    assert kinds([a, S("b", 100 + RECONNECT_WINDOW_S, 300, server_ip="x")]) == [("moved", "a", "b")]
    assert kinds([a, S("b", 100 + RECONNECT_WINDOW_S + 0.01, 300, server_ip="x")]) == []
    assert kinds([a, S("b", 100 - OVERLAP_S, 300, server_ip="x")]) == [("moved", "a", "b")]
    assert kinds([a, S("b", 100 - OVERLAP_S - 0.01, 300, server_ip="x")]) == []  # two consoles at once


def test_retry_needs_a_failure_and_the_same_server_and_port():
    fail = S("a", 0, 1, state="refused", feature="UNKNOWN", transport="none")
    assert kinds([fail, S("b", 2, 50)]) == [("retry", "a", "b")]
    assert kinds([fail, S("b", 2, 50, server_port=912)]) == []  # another service, a failed non-console before
    rejected = S("a", 0, 1, login_outcome="rejected", feature="NONE", transport="tls")
    nfc = S("b", 2, 3, feature="NFC", transport="tls+tls2")
    assert kinds([rejected, nfc]) == [("retry", "a", "b")]
    # busy services: NFC copies one after the other are not reconnects
    assert kinds([replace(nfc, uid="n1"), replace(nfc, uid="n2", start=4, end=5)]) == []


def test_the_same_vm_is_matched_by_its_vmx_path():
    a = S("a", 0, 10, feature="UNKNOWN", transport="clear", connect_kind="mks", connect_target="/vmfs/a.vmx")
    b = replace(a, uid="b", start=11, end=20, server_ip="10.0.0.2")
    assert kinds([a, b]) == [("moved", "a", "b")]
    assert kinds([a, replace(b, connect_target="/vmfs/other.vmx")]) == [("moved", "a", "b")]  # still consoles
    assert kinds([a, replace(b, connect_target="/vmfs/other.vmx", connect_kind="vmxargs", feature="VMXARGS",
                             transport="clear")]) == []


def test_each_earlier_session_links_once_and_clients_are_separate():
    a = S("a", 0, 10)
    b, c = S("b", 11, 20, server_ip="x"), S("c", 12, 20, server_ip="y", client_ip="10.8.8.8")
    d = S("d", 21, 30, server_ip="z")
    assert kinds([a, b, c, d]) == [("moved", "a", "b"), ("moved", "b", "d")]
    assert kinds([a, b], exclude={("a", "b")}) == []


def test_lookback_is_bounded():
    many = [S(f"n{i}", i * 0.01, i * 0.01 + 0.001, feature="NFC") for i in range(LOOKBACK + 5)]
    fail = S("f", -1, 0.0, state="no_answer", feature="UNKNOWN", transport="none")
    late = S("l", 0.5, 9)
    assert ("retry", "f", "l") not in kinds([fail, *many, late])  # beyond the lookback


@pytest.mark.parametrize("capture", sorted(p.name for p in [*SAMPLES.glob("*.pcap*"), *SAMPLES.glob("doctor/*.pcap*")]
                                            if p.suffix in (".pcap", ".pcapng")))
def test_the_diagnosis_and_the_timeline_agree(capture):
    path = SAMPLES / capture if (SAMPLES / capture).exists() else SAMPLES / "doctor" / capture
    result = analyze(path)
    arrows = {(r.from_uid, r.to_uid) for r in plots.links_frame(result).itertuples() if r.kind == "reconnect"}
    diag = result.extras["diagnostics"]
    notes = [f for f in diag.findings if f.kind in ("console_followed_vm", "console_retry")]
    for f in notes:
        assert tuple(f.related[:2]) in arrows, (f.kind, f.related, arrows)


def test_the_agreement_is_not_vacuous():
    """The bundled vMotion and retry captures do carry the notes the test above compares."""
    for name, kind in (("vmotion.pcap", "console_followed_vm"), ("client-retry.pcap", "console_retry")):
        result = analyze(SAMPLES / "doctor" / name)
        assert any(f.kind == kind for f in result.extras["diagnostics"].findings), name
