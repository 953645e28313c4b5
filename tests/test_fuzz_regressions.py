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


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.name)
def test_regression_input(path):
    target = next(name for name in sorted(targets.TARGETS, key=len, reverse=True) if path.name.startswith(name))
    targets.TARGETS[target](path.read_bytes())  # must not raise


def _damaged_gzip(tmp_path):
    """The sample, gzipped, with the first damage (from the middle on) that makes zlib itself
    fail (``zlib.error: invalid ...``), not only the CRC check at the end."""
    good = gzip.compress(SAMPLE.read_bytes(), mtime=0)
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


def test_damaged_gzip_through_analyze(tmp_path):
    result = analyze(_damaged_gzip(tmp_path))
    assert any(w.kind == "truncated_file" and w.offset for w in result.weird)
