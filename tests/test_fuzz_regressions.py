"""Crashes found by fuzzing become regression inputs here (issue 13): every file under
tests/fuzz_regressions/ is replayed through the target its name starts with, and the specific
causes found so far are tested on inputs built here."""

import gzip
import zlib
from pathlib import Path

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.io.capture import CaptureReader
from fuzz import targets

ROOT = Path(__file__).resolve().parent
REGRESSIONS = sorted((ROOT / "fuzz_regressions").glob("*.bin"))
SAMPLE = ROOT.parent / "samples" / "unanswered-syn.pcap"


def test_regression_inputs():
    """Every saved crasher replays through its target without raising (``scripts/fuzz.py`` saves
    them there; the causes found so far are rebuilt in the tests below, so the folder may be empty)."""
    for path in REGRESSIONS:
        target = next(name for name in sorted(targets.TARGETS, key=len, reverse=True) if path.name.startswith(name))
        targets.TARGETS[target](path.read_bytes())  # must not raise


def _damaged_gzip(tmp_path, sample=None):
    """The sample, gzipped, with the first damage (from the middle on) that makes zlib itself
    fail (``zlib.error: invalid ...``), not only the CRC check at the end."""
    good = gzip.compress((sample or SAMPLE).read_bytes(), mtime=0)
    for pos in range(len(good) // 2, len(good) - 8):
        data = bytearray(good)
        data[pos] ^= 0xFF
        try:
            gzip.decompress(bytes(data))
        except zlib.error:
            break
        except Exception:  # noqa: BLE001 - a CRC or length error: not the case wanted here
            continue
    else:
        pytest.fail("no damage position makes zlib fail")
    path = tmp_path / "damaged.pcap.gz"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("engine", ["python", "c"])
def test_damaged_gzip_member_is_a_weird_row_with_offset(tmp_path, engine):
    from dissect.port902.io import native

    if engine == "c" and native._fastscan is None:
        pytest.skip("C engine not built")
    path = _damaged_gzip(tmp_path)
    with CaptureReader(path, engine=engine) as r:
        pkts = list(r)
    (w,) = [w for w in r.stats.warnings if w.kind == "truncated_file" and "compressed" in w.detail]
    assert w.offset > 0 and "compressed" in w.detail
    assert pkts, "what was decompressed before the damage is still read"


@pytest.mark.parametrize("sample", ["unanswered-syn.pcap", "nfc-transfers.pcapng"])
def test_damaged_gzip_through_analyze(tmp_path, sample):
    """pcapng too: the key-log reader (Decryption Secrets Blocks) once let zlib.error through."""
    result = analyze(_damaged_gzip(tmp_path, SAMPLE.parent / sample))
    assert any(w.kind == "truncated_file" and w.offset for w in result.weird)


def _capture_at(path, ts):
    import struct

    from dissect.port902.lab.pcapwriter import CaptureWriter

    hdr = struct.pack("!HHIIBBHHH", 40000, 902, 1, 0, 0x50, 0x02, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    with CaptureWriter(str(path), fmt="pcapng") as w:  # 64-bit timestamps: any year
        w.write(ts, ip + hdr)
    return path


@pytest.mark.parametrize("ts", [1.7e9, 1.7e12, 2**32 - 1.0, 4e9])
def test_timestamps_out_of_calendar_range_render(tmp_path, ts):
    """Year 56337 (a damaged timestamp) once killed the table renderer; pandas' OutOfBoundsDatetime
    (past 2262) the CSV and the frames."""
    import io

    from dissect.port902.model.timefmt import utc_text
    from dissect.port902.output.render import render_table

    result = analyze(_capture_at(tmp_path / "t.pcap", ts))
    out = io.StringIO()
    render_table(result, out)
    frame = result.sessions_frame()
    assert len(frame) == 1
    for value in (ts, 1e300, float("nan"), float("inf"), -1e18):
        assert isinstance(utc_text(value), str)
    assert utc_text(1e300).startswith("1e+300")


def test_library_leaves_the_collector_alone(monkeypatch):
    """analyze() is a library call: it must not freeze, unfreeze or retune the caller's gc."""
    import gc

    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    monkeypatch.setattr(gc, "set_threshold", lambda *a: calls.append(("set_threshold", a)))
    before = gc.get_threshold()
    analyze(SAMPLE)
    assert calls == [] and gc.get_threshold() == before
