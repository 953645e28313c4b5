"""Sessions streamed instead of kept (issue 13, memory): ``analyze(emit=...)`` and ``-f jsonl``.

The streamed output must be the batch output (the same lines, in the order sessions end), a
finished connection must be freed by reference counting alone (no cycle left for the
collector), lazily made sessions must give the records eager ones give, and the peak memory of
``-f jsonl`` must not grow with the number of sessions (measured on captures that
``scripts/gen_stress.py`` writes, in a child process, as ``scripts/stress_bench.py`` does).
"""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902 import analysis as analysis_mod
from dissect.port902.analysis import analyze
from dissect.port902.cli.main import main
from dissect.port902.net.flows import FlowTable, IssuedUids
from dissect.port902.output.render import render_json, render_jsonl

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.pcap*")) + sorted((ROOT / "samples" / "doctor").glob("*.pcap*"))
sys.path.insert(0, str(ROOT / "scripts"))
import gen_stress  # noqa: E402


def _batch_jsonl(path) -> list[str]:
    buf = io.StringIO()
    render_jsonl(analyze(path, observers=[]), buf)
    return buf.getvalue().splitlines()


def _streamed_jsonl(path, tmp_path) -> list[str]:
    out = tmp_path / "out.jsonl"
    main(["analyze", str(path), "-f", "jsonl", "-o", str(out), "-q"])
    return out.read_text().splitlines()


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_streamed_jsonl_is_the_batch_output(path, tmp_path):
    batch, streamed = _batch_jsonl(path), _streamed_jsonl(path, tmp_path)
    assert sorted(streamed) == sorted(batch)
    kinds = [json.loads(x)["record_type"] for x in streamed]
    # hand-offs and the weird rows of no session come after every session line
    tail = kinds[max((i for i, k in enumerate(kinds) if k == "session"), default=-1) + 1:]
    assert set(tail) <= {"handoff", "weird"}


def test_streamed_handoffs_among_unrelated_sessions(tmp_path):
    """903 legs and the 902 sessions of their clients wait to be paired; the rest goes out at once.
    One client's hand-offs interleaved with unrelated 902 sessions of the same client."""
    cap = tmp_path / "handoff.pcap"
    gen_stress.generate("handoff", str(cap), 150)
    batch, streamed = _batch_jsonl(cap), _streamed_jsonl(cap, tmp_path)
    assert sorted(streamed) == sorted(batch)
    handoffs = [json.loads(x) for x in streamed if '"record_type": "handoff"' in x]
    assert len(handoffs) == 150


def test_emit_keeps_nothing_and_counts_everything(samples_dir):
    got = []
    result = analyze(samples_dir / "classic-esx-handoff.pcap", observers=[], emit=got.append)
    whole = analyze(samples_dir / "classic-esx-handoff.pcap", observers=[])
    assert result.sessions == [] and result.emitted == len(got) == len(whole.sessions)
    assert sorted((r.to_dict() for r in got), key=lambda d: d["uid"]) == sorted(
        (w.to_dict() for w in whole.sessions), key=lambda d: d["uid"])
    assert [h.to_dict() for h in result.handoffs] == [h.to_dict() for h in whole.handoffs]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_json_into_a_file_is_one_dumps_of_the_document(path):
    result = analyze(path)
    buf = io.StringIO()  # not a terminal: the streamed writer
    render_json(result, buf)
    assert buf.getvalue() == json.dumps(result.to_dict(), ensure_ascii=True, default=str) + "\n"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_lazy_sessions_give_the_records_eager_ones_give(path, monkeypatch):
    lazy = analyze(path).to_dict()

    class Eager(FlowTable):
        def __init__(self, *args, **kwargs):
            kwargs["lazy_sessions"] = False
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(analysis_mod, "FlowTable", Eager)
    assert analyze(path).to_dict() == lazy


def test_finished_connections_leave_no_reference_cycle(samples_dir):
    """Freed by reference counts alone: the command line raises the collector's threshold for
    speed, which used to let every finished session pile up as cyclic garbage."""
    gc.collect()
    gc.disable()
    try:
        for name in ("doctor/login-530.pcap", "classic-esx-handoff.pcap", "doctor/clean.pcap"):
            analyze(samples_dir / name, observers=[], emit=lambda r: None)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        names = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not names & {"Session", "Connection", "Reassembler", "Direction", "TlsDirection", "Dialogue"}, names


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=400),
       st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=50))
def test_issued_uids_answers_as_a_set(added, probes):
    issued, ref = IssuedUids(), set()
    for k in added:
        assert (k in issued) == (k in ref)
        issued.add(k)
        ref.add(k)
    for k in probes + added:
        assert (k in issued) == (k in ref)
    assert len(issued) == len(ref) or len(added) != len(set(added))


def test_issued_uids_across_merges():
    issued = IssuedUids()
    keys = [(k * 0x9E3779B97F4A7C15) % 2**64 for k in range(200_000)]  # several merges of the recent set
    for k in keys:
        issued.add(k)
    assert all(k in issued for k in keys[::997]) and not any(k + 1 in issued for k in keys[:50] if k + 1 not in keys)


def _peak_rss_mib(capture: Path) -> float:
    cmd = [sys.executable, "-m", "dissect.port902.cli.main", "analyze", str(capture), "-f", "jsonl",
           "-o", os.devnull, "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    assert proc.returncode in (0, 1), err
    return usage.ru_maxrss / 1024


def _spaced_sessions(path: Path, n: int) -> None:
    """``n`` complete TLS authd sessions and ``n`` refused attempts, one pair every 20 ms: far more
    sessions than are ever open at once (the live set is a few hundred whatever ``n`` is)."""
    rng = gen_stress.random.Random(7)
    w = gen_stress.Writer(str(path))
    server = bytes([10, 250, 0, 2])
    ch, sh = gen_stress.client_hello(rng), gen_stress.server_hello(rng)
    for k in range(n):
        c = gen_stress.Conn(w, gen_stress.ip4(1 + k % 5000 + (2 << 16)), server, 30000 + k % 30000, 902, rng)
        c.open()
        c.send(False, gen_stress.BANNER)
        c.send(True, ch)
        c.send(False, sh)
        for size in (29 + k % 40, 60, 33):
            c.send(True, gen_stress.app(rng, size))
            c.send(False, gen_stress.app(rng, size + 20))
        c.close()
        cip = gen_stress.ip4(1 + k % 5000 + (4 << 16))
        seq = rng.getrandbits(32)
        w.tcp(cip, server, 40000 + k % 20000, 902, seq, 0, gen_stress.SYN)
        w.tcp(server, cip, 902, 40000 + k % 20000, 0, seq + 1, gen_stress.RST | gen_stress.ACK)
        w.t += 20_000
    w.close()


def test_jsonl_memory_does_not_grow_with_the_sessions(tmp_path):
    """4x the sessions, the same peak within a few MiB (when every record was kept to the end,
    ~8 KB per short session: ~45 MiB more here)."""
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    _spaced_sessions(small, 2_000)
    _spaced_sessions(big, 8_000)
    rss_small, rss_big = _peak_rss_mib(small), _peak_rss_mib(big)
    assert rss_big - rss_small < 10, (rss_small, rss_big)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_streamed_parquet_is_the_sessions_frame(path, tmp_path, monkeypatch):
    """-f parquet of the sessions table is written in row groups as sessions end (two per row
    group here, to have several): the same rows and dtypes as the batch frame."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from dissect.port902.output import parquet

    monkeypatch.setattr(parquet, "ROW_GROUP", 2)
    out = tmp_path / "s.parquet"
    main(["analyze", str(path), "-f", "parquet", "-o", str(out), "-q"])
    got = pd.read_parquet(out)
    ref = analyze(path, observers=[]).sessions_frame()
    assert list(got.dtypes) == list(ref.dtypes)
    key = ["start", "first_frame", "uid"]

    def plain(df):  # a category's order of categories follows the rows' order; its values are what count
        df = df.sort_values(key).reset_index(drop=True)
        return df.astype({c: "object" for c in df.columns if str(df[c].dtype) == "category"})
    pd.testing.assert_frame_equal(plain(got), plain(ref))
    assert pq.ParquetFile(out).metadata.num_row_groups == max(1, -(-len(ref) // 2))
