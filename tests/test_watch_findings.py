"""``dissect902 watch`` prints diagnosis findings as they become certain (issue 10): over a whole file
exactly the findings ``dissect902 doctor`` reports, each once; while the capture runs, the ones
whose evidence is settled (a capture merged with mergecap from samples shifted by editcap); the
snapshots leave the diagnosis' own state alone; their number is bounded by capture time and a
share of the run time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.analyzers.vnc import VncConsoles
from dissect.port902.cli.main import main
from dissect.port902.infer.diagnose import Diagnostics
from dissect.port902.infer.diagnose.live import EVERY_S, LiveFindings, snapshot

ROOT = Path(__file__).resolve().parent.parent
DOCTOR = sorted(p for p in (ROOT / "samples" / "doctor").glob("*.pcap*") if not p.name.endswith(".json"))
OTHER = sorted(p for p in (ROOT / "samples").glob("*.pcap*") if not p.name.endswith(".json"))


def watch(capsys, path) -> list[dict]:
    assert main(["watch", "-r", str(path), "-q", "-f", "jsonl"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def doctor(capsys, path) -> tuple[list[dict], list[tuple]]:
    """doctor's JSON findings, and the keys of the same run's findings (the library's Diagnostics)."""
    main(["doctor", "-q", "-f", "json", str(path)])
    doc = json.loads(capsys.readouterr().out)
    diag = Diagnostics()
    analyze(path, observers=[VncConsoles(), diag])
    assert [f.to_dict() for f in diag.findings] == doc["diagnostics"]["findings"]
    return doc["diagnostics"]["findings"], [tuple(f.key) for f in diag.findings]


def printed(records) -> list[dict]:
    return [r for r in records if r["record_type"] == "finding" and r["phase"] in ("live", "end")]


def strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in ("record_type", "phase", "printed", "key", "settled_ts")}


@pytest.mark.parametrize("sample", DOCTOR + OTHER, ids=lambda p: p.name)
def test_watch_prints_exactly_doctors_findings_once(capsys, sample):
    records = watch(capsys, sample)
    shown = printed(records)
    found, keys = doctor(capsys, sample)
    assert len(keys) == len(set(keys))  # keys tell findings apart
    assert sorted(tuple(r["key"]) for r in shown) == sorted(keys)  # each once, none that doctor lacks
    assert sorted((r["kind"], r["title"]) for r in shown) == sorted((f["kind"], f["title"]) for f in found)
    final = [r for r in records if r["record_type"] == "finding" and r["phase"] == "summary"]
    assert [strip(r) for r in final] == found  # the snapshots did not disturb the final diagnosis
    assert all(r["printed"] in ("live", "end") for r in final)
    (summary,) = [r for r in records if r["record_type"] == "summary"]
    assert summary["findings_live_not_final"] == 0
    assert summary["findings_printed_live"] == sum(r["phase"] == "live" for r in shown)
    # what was printed at the end is the final finding itself
    by_key = {tuple(r["key"]): r for r in final}
    for r in shown:
        if r["phase"] == "end":
            assert strip(r) == strip(by_key[tuple(r["key"])])


SHIFTS = (("refused.pcap", 0), ("syn-no-answer.pcap", 300), ("dns-nxdomain.pcap", 600),
          ("login-530.pcap", 900), ("reset-midstream.pcap", 1200), ("clean.pcap", 1500))


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """Six doctor samples, 300 s apart (editcap -t), in one capture (mergecap)."""
    d = tmp_path_factory.mktemp("merged")
    parts = []
    for name, shift in SHIFTS:
        out = d / f"{shift}-{name}"
        subprocess.run(["editcap", "-F", "pcap", "-t", str(shift), str(ROOT / "samples" / "doctor" / name), str(out)],
                       check=True, capture_output=True)
        parts.append(str(out))
    path = d / "merged.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(path), *parts], check=True, capture_output=True)
    return path


@pytest.mark.tools("editcap", "mergecap")
def test_findings_come_while_the_capture_runs(capsys, merged):
    """Each part's finding is printed live, before the session lines of the parts that follow: at the
    first snapshot after its sessions ended (a session ends at a sweep of the connection table, on a
    later packet; the unanswered SYN after 120 s without a packet) or, for the DNS failure, 60 s
    after its last answer; and the whole still equals doctor's findings."""
    records = watch(capsys, merged)
    found, keys = doctor(capsys, merged)
    shown = printed(records)
    assert sorted(tuple(r["key"]) for r in shown) == sorted(keys)
    first = float(min(r["start"] for r in records if r["record_type"] == "session"))
    base = first - 0.0  # the first part begins the capture
    live = {r["kind"]: r for r in shown if r["phase"] == "live"}
    assert {"refused", "dns_nxdomain", "syn_no_answer", "login_rejected"} <= set(live), [r["kind"] for r in shown]
    for kind, shift in (("refused", 0), ("syn_no_answer", 300), ("dns_nxdomain", 600), ("login_rejected", 900)):
        pos = records.index(live[kind])
        later = [i for i, r in enumerate(records) if r["record_type"] == "session"
                 and r["start"] >= base + shift + 300 - 1]
        assert later and pos < later[0], kind  # printed before the next part's first session line
        assert live[kind]["settled_ts"] >= live[kind]["last_ts"]
        assert live[kind]["settled_ts"] < base + SHIFTS[-1][1]  # while reading, long before the end
    # the DNS failure waited for its 60 s window, the SYN for the attempt timeout
    assert live["dns_nxdomain"]["settled_ts"] - live["dns_nxdomain"]["last_ts"] >= 60
    assert live["syn_no_answer"]["settled_ts"] - live["syn_no_answer"]["last_ts"] >= 120 - 1


def test_a_grown_finding_is_printed_once(capsys, tmp_path):
    """Two refused attempts of one client to one host 200 s apart, a working session later: one
    finding (its key: client, host, port), printed live when the first attempt ended, and in the
    summary with both attempts."""
    from dissect.port902.lab.pcapwriter import CaptureWriter
    from dissect.port902.lab.tcp import TcpConversation

    t0 = 1_700_000_000.0
    convs = [TcpConversation("10.0.0.1", 40001, "10.0.0.2", 902, t0), TcpConversation("10.0.0.1", 40002, "10.0.0.2",
                                                                                          902, t0 + 200)]
    convs[0].refuse(retries=(0.5,))
    convs[1].refuse()
    ok = TcpConversation("10.0.0.3", 40003, "10.0.0.2", 902, t0 + 400)
    ok.open()
    ok.server_send(b"220 VMware Authentication Daemon Version 1.10: SSL Required\r\n")
    ok.close()
    path = tmp_path / "twice.pcap"
    with CaptureWriter(str(path)) as w:
        for ts, pkt in sorted(p for c in (*convs, ok) for p in c.packets()):
            w.write(ts, pkt)
    records = watch(capsys, path)
    shown = printed(records)
    assert [(r["kind"], r["phase"]) for r in shown] == [("refused", "live")]
    assert t0 + 200 <= shown[0]["settled_ts"] < t0 + 300  # at the sweep the second attempt caused
    (final,) = [r for r in records if r["record_type"] == "finding" and r["phase"] == "summary"]
    assert final["key"] == shown[0]["key"] and final["printed"] == "live"
    assert len(final["related_uids"]) == 2 and len(shown[0]["related_uids"]) == 1
    assert [tuple(k) for k in doctor(capsys, path)[1]] == [tuple(final["key"])]


def test_a_snapshot_changes_nothing():
    """Snapshots mid-way leave the observer's tables as they were: the JSON after them is the JSON
    of a run without them (pending DNS queries are expired on copies)."""
    sample = ROOT / "samples" / "doctor" / "dns-no-answer.pcap"
    plain = analyze(sample).to_dict()

    class Probe(Diagnostics):
        def packet(self, pkt):
            super().packet(pkt)
            self.seen.append(len(snapshot(self, [], pkt.ts + 5.0, [str(sample)])))

    probe = Probe()
    probe.seen = []
    result = analyze(sample, observers=[VncConsoles(), probe])
    assert result.to_dict() == plain
    assert max(probe.seen) == 1  # the unanswered query shows once DNS_TIMEOUT_S has passed


def test_snapshots_are_bounded_by_capture_time_and_a_share_of_the_run():
    diag = Diagnostics()
    live = LiveFindings(diag)
    for t in range(0, 100):
        assert live.poll([], float(t), ["x"]) == []
    assert live.snapshots == 100 // int(EVERY_S) and live.skipped == 0  # one per EVERY_S capture seconds
    stingy = LiveFindings(diag, share=0.0, allowance_s=0.0)
    stingy.poll([], 0.0, ["x"])  # the first one is free
    for t in range(2, 200, 2):
        stingy.poll([], float(t), ["x"])
    assert stingy.snapshots == 1 and stingy.skipped == 99


def test_table_lines_are_one_safe_line_each(capsys):
    assert main(["watch", "-r", str(ROOT / "samples" / "doctor" / "login-530.pcap"), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [ln for ln in out if "  FINDING " in ln]
    assert len(lines) == 1 and "problem 80%" in lines[0] and "(login_rejected; frames " in lines[0]
    assert any(ln.startswith("diagnosis: 1 finding(s)") for ln in out)
