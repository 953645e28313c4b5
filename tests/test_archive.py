"""Capture archives (issue 11): a capture split by real ``editcap`` into rotated pieces, read
as a directory, gives the same sessions, hand-offs and diagnosis as the whole file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.archive import analyze_archive, discover
from dissect.port902.io.chain import first_timestamp

UID = re.compile(r"\b[A-Z][0-9a-f]{16,}\b")  # session / console uids: derived from the source's name
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p for p in list((ROOT / "samples").glob("*.pcap*")) + list((ROOT / "samples" / "doctor").glob("*.pcap*")))


def _packets(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", "-T", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split("\t")[-1])


def _duration(path: Path) -> float:
    out = subprocess.run(["capinfos", "-u", "-M", "-T", str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1].split("\t")[-1])


def _split(src: Path, out: Path, how: list[str]) -> list[Path]:
    """Split with editcap, then rename the pieces so that name order is NOT time order
    (reversed, and numbered so ``cap.10`` sorts before ``cap.9``)."""
    out.mkdir()
    subprocess.run(["editcap", *how, str(src), str(out / ("piece" + "".join(src.suffixes[:1] or [".pcap"])))],
                   check=True, capture_output=True)
    pieces = sorted(out.iterdir())
    renamed = []
    for i, p in enumerate(pieces):
        q = out / f"cap.{len(pieces) - 1 - i}"
        p.rename(q)
        renamed.append(q)
    return renamed


def _summary(result):
    hs = {s.uid: (s.client, s.server) for s in result.sessions}
    sessions = sorted((s.client, s.server, s.start, s.end, s.first_frame, s.last_frame, s.state, s.conn_state,
                       s.history, s.packets, s.bytes, s.feature, s.confidence, s.login_outcome, len(s.handshakes),
                       s.handoff_gap_s) for s in result.sessions)
    handoffs = sorted((hs[h.from_session], hs[h.to_session], round(h.gap_s, 6)) for h in result.handoffs)
    diag = result.diagnostics
    findings = sorted(UID.sub("UID", json.dumps(f, sort_keys=True, default=str)) for f in
                      _strip(diag.to_json().get("findings", []))) if diag is not None else []
    return sessions, handoffs, findings


def _strip(findings):
    """Findings without what names the file (source, session uids): those differ by design."""
    out = []
    for f in findings:
        f = {k: v for k, v in f.items() if k not in ("source", "sources", "sessions", "uids", "evidence")}
        out.append(f)
    return out


@pytest.mark.tools("editcap", "capinfos")
@pytest.mark.parametrize("mode", ["count", "interval"])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_split_archive_equals_whole_file(sample, mode, tmp_path):
    n = _packets(sample)
    if n < 4:
        pytest.skip("too few packets to split")
    if mode == "count":
        how = ["-c", str(max(1, n // 5))]
    else:
        dur = _duration(sample)
        if dur <= 0.0:
            pytest.skip("all packets at one instant")
        how = ["-i", f"{max(dur / 4, 1e-3):.6f}".rstrip("0")]
    pieces = _split(sample, tmp_path / "ring", how)
    assert len(pieces) >= 2, "editcap made one piece only: the test would prove nothing"
    whole = analyze(sample)
    stitched = analyze_archive(tmp_path / "ring")
    assert _summary(stitched) == _summary(whole)
    # provenance: every session names the pieces its span crosses, in their own frame numbers
    order = [f.path for f in stitched.captures[0].files if f.stats.packets]  # editcap -i may leave an empty piece
    assert order == sorted(order, key=lambda p: first_timestamp(p))
    assert order != sorted(order), "rotated names must be in an order different from time order"
    for s in stitched.sessions:
        assert s.sources and s.source == str(tmp_path / "ring")
        span = sum(x["last_frame"] - x["first_frame"] + 1 for x in s.sources)
        assert span == s.last_frame - s.first_frame + 1
    assert not [w for w in stitched.weird if w.kind in ("unreadable_capture", "captures_overlap")]


def test_unreadable_file_is_a_weird_row_and_the_rest_continues(tmp_path):
    ring = tmp_path / "ring"
    ring.mkdir()
    shutil.copy(ROOT / "samples" / "classic-esx-handoff.pcap", ring / "a.pcap")
    (ring / "b.pcap").write_bytes(b"this is not a capture\n")
    result = analyze_archive(ring)
    assert len(result.sessions) == len(analyze(ROOT / "samples" / "classic-esx-handoff.pcap").sessions)
    rows = [w for w in result.weird if w.kind == "unreadable_capture"]
    assert len(rows) == 1 and rows[0].source == str(ring / "b.pcap") and "not a pcap" in rows[0].detail


def test_sensors_are_never_stitched_and_shared_connections_are_noted(tmp_path):
    for sensor in ("esx-a", "esx-b"):
        (tmp_path / sensor).mkdir()
        shutil.copy(ROOT / "samples" / "classic-esx-handoff.pcap", tmp_path / sensor / "x.pcap")
    one = analyze(ROOT / "samples" / "classic-esx-handoff.pcap")
    chains = discover([tmp_path], "dir")
    assert sorted(c.name for c in chains) == [str(tmp_path / "esx-a"), str(tmp_path / "esx-b")]
    result = analyze_archive([tmp_path])
    assert len(result.sessions) == 2 * len(one.sessions)
    assert len(result.handoffs) == 2 * len(one.handoffs)  # hand-offs found per sensor, not across
    notes = [w for w in result.weird if w.kind == "seen_by_several_sensors"]
    assert len(notes) == len(result.sessions)
    assert all(("esx-b" in w.detail) != (w.source.endswith("esx-b")) for w in notes)
    merged = analyze_archive([tmp_path], sensor_by="none")
    assert len(merged.captures) == 1 and len(merged.captures[0].files) == 2


@pytest.fixture(scope="module")
def long_lab(tmp_path_factory) -> Path:
    """A long lab capture (consoles of up to 2 h, NFC, hand-offs, background traffic)."""
    from dissect.port902.cli.main import main as lab_main

    out = tmp_path_factory.mktemp("lab")
    assert lab_main(["lab", "generate", "-o", str(out), "-n", "1", "--seed", "11", "--sessions", "30",
                     "--max-bytes", "2M", "--max-console", "7200", "-q"]) == 0
    return next(out.glob("*.pcap"))


@pytest.mark.tools("editcap", "capinfos")
@pytest.mark.parametrize("how", [["-c", "1000"], ["-i", "300"], ["-c", "97"]], ids=" ".join)
def test_long_lab_capture_split_equals_whole(long_lab, how, tmp_path):
    whole = analyze(long_lab)
    pieces = _split(long_lab, tmp_path / "ring", how)
    assert len(pieces) >= 10
    stitched = analyze_archive(tmp_path / "ring")
    assert _summary(stitched) == _summary(whole)
    # sessions really did cross files (else the test proves nothing about stitching)
    crossing = [s for s in stitched.sessions if len(s.sources) > 1]
    assert len(crossing) >= 3
    assert any(s.feature == "MKS" for s in crossing)
    assert _summary(whole)[2], "the diagnosis found something to compare"


@pytest.mark.tools("editcap")
def test_handoff_and_reconnect_across_files(tmp_path):
    """The 903 leg in one file and its 902 session in the next (frames 1-20 | 21-...); the
    vMotion reconnect's two consoles in different files: still linked."""
    sample = ROOT / "samples" / "classic-esx-handoff.pcap"
    _split(sample, tmp_path / "ring", ["-c", "20"])
    result = analyze_archive(tmp_path / "ring")
    (h,) = result.handoffs
    leg, main = result.session(h.from_session), result.session(h.to_session)
    assert leg.sources[0]["file"] != main.sources[0]["file"] and leg.feature == main.feature == "MKS"
    vm = ROOT / "samples" / "doctor" / "vmotion.pcap"
    whole = analyze(vm)
    consoles = sorted(s.first_frame for s in whole.sessions if s.feature == "MKS")
    assert len(consoles) >= 2
    cut = consoles[1] - 1  # the second console starts the second file
    _split(vm, tmp_path / "vm", ["-c", str(cut)])
    stitched = analyze_archive(tmp_path / "vm")
    kinds = lambda r: sorted(f["kind"] for f in r.diagnostics.to_json()["findings"])  # noqa: E731
    assert kinds(whole) == ["console_followed_vm"]
    first, second = sorted((s for s in stitched.sessions if s.feature == "MKS"), key=lambda s: s.first_frame)[:2]
    assert second.sources[0]["file"] not in [x["file"] for x in first.sources[:1]]
    assert kinds(stitched) == kinds(whole)
    assert _summary(stitched) == _summary(whole)


def _run_cli(args):
    from dissect.port902.cli.main import main

    return main(args)


@pytest.mark.tools("editcap")
def test_cli_directory_is_one_stream(tmp_path, capsys):
    sample = ROOT / "samples" / "classic-esx-handoff.pcap"
    _split(sample, tmp_path / "ring", ["-c", "100"])
    assert _run_cli(["analyze", "-q", "-f", "json", str(tmp_path / "ring")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["captures"]) == 1 and len(doc["captures"][0]["files"]) == 6
    assert [len(s["sources"]) for s in doc["sessions"]] == [1, 6]
    assert len(doc["handoffs"]) == 1
    # the same pieces given as files, each alone (the default for a list of files): split sessions
    files = sorted(str(p) for p in (tmp_path / "ring").iterdir())
    assert _run_cli(["analyze", "-q", "-f", "json", *files]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert len(alone["sessions"]) > 2 and "sources" not in alone["sessions"][0]
    assert _run_cli(["analyze", "-q", "-f", "json", "--sensor-by", "none", *files]) == 0
    assert len(json.loads(capsys.readouterr().out)["sessions"]) == 2


@pytest.mark.tools("editcap")
def test_progress_counts_bytes_over_the_whole_archive(tmp_path):
    sample = ROOT / "samples" / "mixed-esxi.pcap"
    pieces = _split(sample, tmp_path / "ring", ["-c", "50"])
    seen: list[int] = []
    (chain,) = discover([tmp_path / "ring"])
    analyze([chain], progress=seen.append)
    total = sum(p.stat().st_size for p in pieces)
    assert chain.size_bytes == total and len(pieces) > 3
    assert seen == sorted(seen) and seen[-1] == total  # one count over all files, never going back


def test_cli_jobs_on_a_list_of_files_keeps_them_apart(tmp_path, capsys):
    files = [str(ROOT / "samples" / "classic-esx-handoff.pcap"), str(ROOT / "samples" / "legacy-login.pcap")]
    assert _run_cli(["analyze", "-q", "-f", "json", "--jobs", "2", *files]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["path"] for c in doc["captures"]] == files  # --sensor-by file: each file its own stream
    assert _run_cli(["analyze", "-q", "-f", "json", *files]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [s["uid"] for s in doc["sessions"]] == [s["uid"] for s in plain["sessions"]]


@pytest.mark.tools("editcap", "mergecap")
def test_idle_expiry_across_a_gap_between_files_is_the_merged_files(tmp_path):
    """A 2 h pause between two files (longer than the idle timeout): the connection table treats
    it in the archive exactly as in the merged file (the idle sweep runs on capture time; here the
    first packet after the pause is the console's own, so it carries on as one session)."""
    sample = ROOT / "samples" / "classic-esx-handoff.pcap"
    pieces = sorted(_split(sample, tmp_path / "ring", ["-c", "200"]), key=first_timestamp)
    later = pieces[1:]
    for p in later:  # the later files start 2 h later
        shifted = p.with_name(p.name + ".shifted")
        subprocess.run(["editcap", "-t", "7200", str(p), str(shifted)], check=True)
        shifted.replace(p)
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), *map(str, pieces)], check=True)
    whole, stitched = analyze(merged), analyze_archive(tmp_path / "ring")
    assert _summary(stitched) == _summary(whole)
    assert max(s.duration_s for s in stitched.sessions) > 7200  # the pause is inside the stream


def test_the_progress_bar_of_several_files_says_how_many_are_done(tmp_path, monkeypatch):
    import io as _io

    from dissect.port902.cli import runner

    class Tty(_io.StringIO):
        def isatty(self):
            return True

    files = []
    for i in range(3):
        f = tmp_path / f"part{i}.pcap"
        f.write_bytes(b"\0" * (2 << 20))
        files.append(str(f))
    monkeypatch.setattr("sys.stderr", Tty())
    bar, update = runner.progress_bar(files, quiet=False)
    assert bar is not None
    update(1 << 20)
    assert "files 0/3" in bar.postfix
    update((4 << 20) + 1)
    assert "files 2/3" in bar.postfix and bar.n == (4 << 20) + 1
    update(6 << 20)
    assert "files 3/3" in bar.postfix
    bar.close()


@pytest.mark.tools("editcap")
def test_doctor_report_and_plot_take_a_directory(tmp_path, capsys):
    """The diagnosis of rotated pieces is the diagnosis of the whole capture: same findings, same
    evidence frames (frame numbers continue across the files)."""
    import json as _json

    from dissect.port902.cli.main import main as cli

    whole = ROOT / "samples" / "mixed-esxi.pcap"
    rot = tmp_path / "rot"
    rot.mkdir()
    subprocess.run(["editcap", "-c", "500", str(whole), str(rot / "part.pcap")], check=True)
    assert len(list(rot.iterdir())) >= 4

    def findings(target):
        capsys.readouterr()
        cli(["doctor", str(target), "-q", "-f", "json"])
        doc = _json.loads(capsys.readouterr().out)
        return [(f["kind"], f["likelihood"], f["evidence_frames"]) for f in doc["diagnostics"]["findings"]]

    assert findings(rot) == findings(whole) != []
    assert cli(["report", str(rot), "-q", "--no-charts", "-o", str(tmp_path / "r.html")]) == 0
    assert "repeated login failures" in (tmp_path / "r.html").read_text()
    assert cli(["plot", str(rot), "-q", "-o", str(tmp_path / "t.png")]) == 0


def test_notes_beside_the_captures_are_not_captures_and_an_empty_folder_is_an_error(tmp_path, capsys):
    from dissect.port902.cli.main import main as cli

    ring = tmp_path / "ring"
    ring.mkdir()
    shutil.copy(ROOT / "samples" / "mixed-esxi.pcap", ring / "20240514-09")  # tcpdump -G names, no extension
    shutil.copy(ROOT / "samples" / "mixed-esxi.keys", ring / "mixed-esxi.keys")
    (ring / "README.md").write_text("# what is in here\n")
    (ring / "labels.json").write_text("{}")
    capsys.readouterr()
    assert cli(["analyze", str(ring), "-q", "-f", "json"]) == 0
    out = capsys.readouterr()
    assert not out.err and len(json.loads(out.out)["sessions"]) == len(analyze(ROOT / "samples" / "mixed-esxi.pcap").sessions)
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in (["analyze", str(empty)], ["doctor", str(empty)], ["analyze", str(empty), "-f", "parquet", "-o",
                                                                      str(tmp_path / "ds")]):
        assert cli([*command, "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no pcap, pcapng or gzip file" in err[0]
