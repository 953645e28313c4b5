"""Charts (plots.py) and ``dissect902 plot`` (plotcli.py).

Every chart kind on every sample capture, saved as PNG and SVG and checked to be a valid
file; the empty cases (no session, no capture) still give a figure; the data behind the
traffic chart conserves bytes; busy captures are binned / packed instead of drawn row by row;
the command writes the files it promises and fails with exit code 2 and one line otherwise.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dissect.port902 import analyze
from dissect.port902.output import frames
from dissect.port902.cli import plot as plotcli
from dissect.port902.output import plots
from dissect.port902.analysis import Analysis

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*.pcap*"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def analyses() -> dict[str, Analysis]:
    return {p.name: analyze(p) for p in SAMPLE_FILES}


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert 150 <= width <= 4000 and 100 <= height <= 4000, (width, height)
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29]) & 0xFFFFFFFF, "IHDR checksum"
    assert data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"), "PNG does not end with IEND"


def assert_svg(path: Path) -> None:
    root = ET.parse(path).getroot()  # well-formed XML
    assert root.tag.endswith("svg")
    assert root.get("width") and root.get("height")


def texts(fig) -> str:
    """Every string drawn on a figure (titles, labels, annotations, legends)."""
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and callable(a.get_text)))


# -- every kind on every sample ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(plots.KINDS))
@pytest.mark.parametrize("sample", [p.name for p in SAMPLE_FILES])
def test_every_kind_on_every_sample(analyses, sample, kind, tmp_path):
    fig = plots.plot(analyses[sample], kind)
    assert isinstance(fig, plots.Chart)
    assert fig._suptitle is not None and fig._suptitle.get_text()
    assert_png(plots.save(fig, tmp_path / f"{kind}.png", dpi=72))
    if sample in ("mixed-esxi.pcap", "unanswered-syn.pcap"):  # SVG too: the busiest and the emptiest
        assert_svg(plots.save(fig, tmp_path / f"{kind}.svg"))


def test_feature_distributions_on_all_samples(analyses, tmp_path):
    feats = pd.concat([a.features_frame() for a in analyses.values()], ignore_index=True)
    fig = plots.feature_distributions(feats)
    assert_png(plots.save(fig, tmp_path / "features.png"))
    assert "tls1_client_last" in texts(fig)


def test_pdf_and_unknown_suffix(analyses, tmp_path):
    fig = plots.session_timeline(analyses["mixed-esxi.pcap"])
    pdf = plots.save(fig, tmp_path / "t.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="png, .svg or .pdf"):
        plots.save(fig, tmp_path / "t.jpg")
    with pytest.raises(ValueError, match="unknown chart kind"):
        plots.plot(analyses["mixed-esxi.pcap"], "pie")


def test_figures_show_themselves_in_jupyter(analyses):
    png = plots.host_totals(analyses["esxi8-console.pcap"])._repr_png_()
    assert png[:8] == PNG_MAGIC


# -- empty inputs ----------------------------------------------------------------------------------------


EMPTY_INPUTS = {
    "empty Analysis": lambda: Analysis(),
    "empty sessions frame": lambda: frames.build(frames.SESSIONS, []),
}


@pytest.mark.parametrize("kind", [*plots.KINDS, "features"])
@pytest.mark.parametrize("empty", list(EMPTY_INPUTS))
def test_empty_analysis_gives_a_figure(empty, kind, tmp_path):
    data = EMPTY_INPUTS[empty]()
    if kind == "features":
        fig = plots.feature_distributions(data if isinstance(data, Analysis) else frames.build(frames.FEATURES, []))
    else:
        fig = plots.plot(data, kind)
    assert_png(plots.save(fig, tmp_path / "empty.png"))
    assert_svg(plots.save(fig, tmp_path / "empty.svg"))
    assert "No " in texts(fig)


def test_sessions_without_payload(analyses):
    fig = plots.bytes_over_time(analyses["unanswered-syn.pcap"])
    assert "No payload bytes" in texts(fig) and "no_answer" in texts(fig)
    assert "no payload bytes" in texts(plots.host_totals(analyses["unanswered-syn.pcap"]))


def test_rejects_other_inputs():
    with pytest.raises(TypeError):
        plots.session_timeline([1, 2, 3])


# -- what the charts say ----------------------------------------------------------------------------------


def test_traffic_conserves_bytes(analyses):
    """Every payload byte of every session lands in exactly one bin, timed or spread."""
    for name, result in analyses.items():
        s = result.sessions_frame()
        total = int(s["orig_bytes"].sum() + s["resp_bytes"].sum())
        traffic = plots.traffic_frame(result)
        assert traffic["bytes"].sum() == pytest.approx(total, abs=1.0), name
        by_dir = traffic.groupby("direction")["bytes"].sum()
        assert by_dir.get("client_to_server", 0) == pytest.approx(int(s["orig_bytes"].sum()), abs=1.0), name


def test_traffic_bins_and_filters(analyses):
    result = analyses["mixed-esxi.pcap"]
    traffic = plots.traffic_frame(result, bin_s=30)
    assert traffic.attrs["bin_s"] == 30
    assert np.allclose(traffic["t_s"] % 30, 0)
    only = plots.traffic_frame(result, features=["MKS"])
    assert set(only["feature"]) == {"MKS"}
    with pytest.raises(KeyError, match="no session with uid Cnope"):
        plots.traffic_frame(result, uids=["Cnope"])


def test_cleartext_nfc_is_spread_and_said(analyses):
    fig = plots.bytes_over_time(analyses["nfc-transfers.pcapng"])
    assert "spread evenly" in texts(fig)
    fp = plots.fingerprints(analyses["nfc-transfers.pcapng"])
    assert "cleartext NFC (no records)" in texts(fp)


def test_timeline_draws_the_903_handoff(analyses):
    result = analyses["classic-esx-handoff.pcap"]
    links = plots.links_frame(result)
    assert list(links["kind"]) == ["handoff"]
    s = result.sessions_frame().set_index("uid")
    assert s.loc[links["from_uid"][0], "resp_port"] == 903 and s.loc[links["to_uid"][0], "resp_port"] == 902
    fig = plots.session_timeline(result)
    assert "hand-off" in texts(fig) and "903\u2192902" in texts(fig)


def test_reconnects(analyses):
    legacy = plots.links_frame(analyses["legacy-login.pcap"])
    assert "retry after login rejected" in set(legacy["why"])
    mixed = plots.links_frame(analyses["mixed-esxi.pcap"])
    assert set(mixed["client"]) == {"10.50.66.6"}  # the brute-force retries, nothing else
    assert plots.links_frame(analyses["unanswered-syn.pcap"]).empty  # two different hosts: no retry


def test_timeline_marks(analyses):
    t = texts(plots.session_timeline(analyses["unanswered-syn.pcap"]))
    assert "no answer, 5 SYNs" in t and "refused" in t and "SYN sent" in t
    t = texts(plots.session_timeline(analyses["mixed-esxi.pcap"]))
    assert "began before the capture" in t and "second TLS handshake" in t
    assert "[fd00:50::12]:902" in t  # IPv6 with brackets, as the CLI prints it


def test_fingerprints_pick_one_per_feature(analyses):
    fig = plots.fingerprints(analyses["mixed-esxi.pcap"])
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left")]
    firsts = [t.split()[0] for t in titles]
    assert len(firsts) == 6 and set(firsts) == {"MKS", "NFC", "SOAP", "VMXARGS", "NONE"}
    assert firsts == sorted(firsts, key=plots.FEATURE_ORDER.index)  # grouped by feature
    one = plots.fingerprints(analyses["mixed-esxi.pcap"], uids=[analyses["mixed-esxi.pcap"].sessions[1].uid[:8]])
    assert len([ax for ax in one.axes if ax.get_visible() and ax.get_title(loc="left")]) == 1


def test_plain_dialogue_is_named(analyses):
    t = texts(plots.fingerprints(analyses["legacy-login.pcap"]))
    for word in ("220", "USER", "331", "PASS", "530", "230", "TEST"):
        assert word in t


# -- busy captures -----------------------------------------------------------------------------------------


def synthetic_sessions(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = np.sort(rng.uniform(0, 3600, n)) + 1.7e9
    dur = rng.exponential(20, n)
    feats = rng.choice(["MKS", "NFC", "NONE", "SOAP"], n)
    rows = [{
        "uid": f"C{i:09d}", "source": "busy.pcap", "orig_ip": f"10.0.{i % 200}.{i % 250}", "orig_port": 40000 + i % 20000,
        "resp_ip": f"10.1.0.{i % 30}", "resp_port": 902, "start": start[i], "end": start[i] + dur[i],
        "duration_s": dur[i], "state": "closed" if i % 10 else "no_answer", "syn_count": 1,
        "orig_bytes": int(rng.integers(0, 5000)), "resp_bytes": int(rng.integers(0, 500000)),
        "feature": feats[i], "confidence": 0.9, "login_outcome": "none", "product": "ESXi 8.x",
    } for i in range(n)]
    return frames.build(frames.SESSIONS, rows)


def test_busy_timeline_thins_labels():
    fig = plots.session_timeline(synthetic_sessions(120))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert 0 < len(labels) <= plots.MAX_LABELED_ROWS
    assert not any(t.get_text().startswith(("MKS 0.", "NFC 0.")) for t in ax.texts)  # no bar texts


def test_very_busy_timeline_packs_lanes_quickly(tmp_path):
    sessions = synthetic_sessions(5000)
    t0 = time.perf_counter()
    fig = plots.session_timeline(sessions)
    plots.save(fig, tmp_path / "busy.png")
    assert time.perf_counter() - t0 < 30
    assert "packed into" in fig.axes[0].get_ylabel()
    assert_png(tmp_path / "busy.png")


def test_busy_traffic_is_binned(tmp_path):
    sessions = synthetic_sessions(3000)
    traffic = plots.traffic_frame(sessions)
    assert traffic["t_s"].nunique() <= plots.TRAFFIC_BINS + 2
    assert traffic["bytes"].sum() == pytest.approx(sessions["orig_bytes"].sum() + sessions["resp_bytes"].sum(), abs=1)
    assert traffic_frame_bins_capped(sessions)
    assert_png(plots.save(plots.bytes_over_time(sessions), tmp_path / "bytes.png"))
    assert_png(plots.save(plots.host_totals(sessions, top=5), tmp_path / "hosts.png"))


def traffic_frame_bins_capped(sessions) -> bool:
    tiny = plots.traffic_frame(sessions, bin_s=1e-6)  # asked for billions of bins
    return tiny.attrs["bin_s"] >= 3600 / plots.MAX_BINS


def test_many_records_are_aggregated(tmp_path):
    sessions = synthetic_sessions(1)
    uid = sessions["uid"][0]
    n = plots.MAX_POINTS * 3
    start = sessions["start"][0].timestamp()  # frames.build takes epoch seconds
    rows = [(uid, start + i * 0.001, i + 10, "server_to_client" if i % 3 else "client_to_server",
             "application_data", 16408 if i % 3 else 40, 1) for i in range(n)]
    records = frames.build(frames.TLS_RECORDS, rows)
    fig = plots.fingerprints(sessions, records=records)
    assert "aggregated" in texts(fig)
    assert_png(plots.save(fig, tmp_path / "agg.png"))


# -- small pieces ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds,step,text", [
    (0, 1, "00:00"), (75, 5, "01:15"), (3725, 60, "1:02:05"), (1.5, 0.5, "00:01.5"), (0.25, 0.05, "00:00.25"),
    (59.96, 0.1, "01:00.0"), (90061, 3600, "1d 01:01"), (-3, 1, "-00:03"),
])
def test_clock(seconds, step, text):
    assert plots.clock(seconds, step) == text


def test_nice_step():
    assert plots.nice_step(237, 120) == 2
    assert plots.nice_step(0.05, 120) == 0.001
    assert plots.nice_step(86400 * 3, 10) == 43200


def test_palette_is_okabe_ito():
    allowed = set(plots.OKABE_ITO.values()) | {plots.GREY}
    assert set(plots.FEATURE_COLORS.values()) <= allowed
    assert len(set(plots.FEATURE_COLORS.values())) == len(plots.FEATURE_COLORS)


def test_human_bytes():
    assert plots.human_bytes(0) == "0 B"
    assert plots.human_bytes(999) == "999 B"
    assert plots.human_bytes(146919) == "147 kB"
    assert plots.human_bytes(1_119_476) == "1.12 MB"


def test_no_pyplot_and_agg_safe():
    """Importing and drawing never touches pyplot (no global figure state, any backend)."""
    code = (
        "import sys\n"
        "from dissect.port902 import analyze, plots\n"
        f"r = analyze({str(SAMPLES / 'esxi8-console.pcap')!r})\n"
        "[plots.plot(r, k) for k in plots.KINDS]\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- dissect902 plot ---------------------------------------------------------------------------------------


def plot_main(argv: list[str]) -> int:
    """What cli.main does once plotcli is wired in: parse, then call args.func."""
    parser = argparse.ArgumentParser(prog="dissect902")
    sub = parser.add_subparsers(dest="command")
    plotcli.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_kinds_match_the_library():
    assert plotcli.KINDS == tuple(plots.KINDS)


def test_cli_writes_one_chart(tmp_path, capsys):
    out = tmp_path / "sessions.png"
    assert plot_main(["plot", str(SAMPLES / "mixed-esxi.pcap"), "-o", str(out)]) == 0
    assert_png(out)
    assert f"wrote {out}" in capsys.readouterr().out


def test_cli_all_kinds_png_and_pdf(tmp_path):
    assert plot_main(["plot", str(SAMPLES / "classic-esx-handoff.pcap"), "--kind", "all", "-q",
                      "-o", str(tmp_path / "site.png")]) == 0
    for kind in plots.KINDS:
        assert_png(tmp_path / f"site-{kind}.png")
    assert plot_main(["plot", str(SAMPLES / "classic-esx-handoff.pcap"), "--kind", "all", "-q",
                      "-o", str(tmp_path / "site.pdf")]) == 0
    pdf = (tmp_path / "site.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-"
    assert re.search(rb"/Count %d\b" % len(plots.KINDS), pdf), "one page per chart kind"


def test_cli_options(tmp_path):
    sample = str(SAMPLES / "mixed-esxi.pcap")
    uid = analyze(sample).sessions[1].uid
    assert plot_main(["plot", sample, "-k", "fingerprints", "--uid", uid[:8], "-q", "-o", str(tmp_path / "f.svg")]) == 0
    assert_svg(tmp_path / "f.svg")
    assert plot_main(["plot", sample, "-k", "bytes", "--bin", "5", "--feature", "MKS", "-q",
                      "-o", str(tmp_path / "b.png"), "--dpi", "80"]) == 0
    assert_png(tmp_path / "b.png")
    assert plot_main(["plot", sample, "-k", "hosts", "--top", "2", "-q", "-o", str(tmp_path / "h.png")]) == 0


@pytest.mark.parametrize("args,message", [
    (["-o", "{tmp}/x.jpg"], "must end in .png, .svg or .pdf"),
    (["-o", "{tmp}/missing/x.png"], "no such directory"),
    (["--uid", "Cnope", "-o", "{tmp}/x.png"], "no session with uid Cnope"),
    (["--bin", "0", "-k", "bytes", "-o", "{tmp}/x.png"], "--bin"),
])
def test_cli_errors(tmp_path, capsys, args, message):
    argv = ["plot", str(SAMPLES / "mixed-esxi.pcap")] + [a.format(tmp=tmp_path) for a in args]
    assert plot_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_unreadable_capture(tmp_path, capsys):
    bogus = tmp_path / "not-a-capture.pcap"
    bogus.write_text("hello")
    assert plot_main(["plot", str(bogus), "-o", str(tmp_path / "x.png")]) == 2
    assert "dissect902 plot: error:" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_cli_help_teaches(capsys):
    with pytest.raises(SystemExit):
        plot_main(["plot", "--help"])
    out = capsys.readouterr().out
    for word in ("timeline", "fingerprints", "hosts", "903->902", "Okabe-Ito", "examples:"):
        assert word in out
