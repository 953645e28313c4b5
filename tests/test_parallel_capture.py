"""One capture on several processes (issue 10, ``analyze --jobs``; archive/parallel.py
``analyze_shared``): the JSON document is the serial run's, byte for byte, on every sample and
with both capture engines; the shares really split the connections; ``--jobs`` is on by default
only for big regular files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.analysis import judge
from dissect.port902.archive import parallel
from dissect.port902.archive.parallel import SLOTS, _options, _share, analyze_shared, caller_fraction, shares
from dissect.port902.cli import runner
from dissect.port902.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(list((ROOT / "samples").glob("*.pcap*")) + list((ROOT / "samples" / "doctor").glob("*.pcap*")))


def _doc(result) -> str:
    return json.dumps(result.to_dict(records=True), sort_keys=True, default=str)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_cli_jobs_output_is_the_serial_output_on_every_sample(sample, capsys):
    assert main(["analyze", "-q", "-f", "json", "--jobs", "1", str(sample)]) in (0, 1, 2)
    serial = capsys.readouterr().out
    assert json.loads(serial)["captures"]
    assert main(["analyze", "-q", "-f", "json", "--jobs", "2", str(sample)]) in (0, 1, 2)
    assert capsys.readouterr().out == serial


@pytest.mark.parametrize("engine", ["c", "python"])
def test_records_and_three_shares_equal_serial(engine, monkeypatch):
    if engine == "python":
        monkeypatch.setenv("DISSECT902_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("DISSECT902_PURE_PYTHON", raising=False)
    for sample in SAMPLES:
        serial = analyze(sample, skip_unreadable=True)
        assert _doc(analyze_shared(sample, jobs=3)) == _doc(serial), sample.name


@pytest.fixture(scope="module")
def lab_capture(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("shared")
    assert main(["lab", "generate", "-o", str(base), "-n", "1", "--seed", "7", "--sessions", "30",
                 "--max-bytes", "1M", "--max-console", "600", "-q"]) == 0
    return next(base.glob("*.pcap*"))


def test_shares_split_the_connections_and_merge_to_the_serial_result(lab_capture, capsys):
    serial = analyze(lab_capture, skip_unreadable=True)
    total = len(serial.sessions)
    got = [_share([os.fspath(lab_capture)], part, _options({})) for part in shares(2, 0.5)]
    assert all(rest == [] for _judged, rest in got)  # no caller to wait for: each judged its own
    parts = [judged for judged, _rest in got]
    assert total > 20 and all(0 < len(p) < total for p in parts)  # both shares did real work
    assert sum(len(p) for p in parts) == total
    assert sorted(s.uid for p in parts for s in p) == sorted(s.uid for s in serial.sessions)
    assert all(s.feature is not None for p in parts for s in p)  # judged where they were built
    assert _doc(analyze_shared(lab_capture, jobs=2)) == _doc(serial)
    assert main(["analyze", "-q", "-f", "json", "--jobs", "1", str(lab_capture)]) == 0
    one = capsys.readouterr().out
    assert main(["analyze", "-q", "-f", "json", "--jobs", "2", str(lab_capture)]) == 0
    assert capsys.readouterr().out == one


def test_the_same_file_twice_is_refused():
    with pytest.raises(ValueError):
        analyze_shared([SAMPLES[0], SAMPLES[0]], jobs=2)


def test_auto_jobs_only_for_big_regular_files(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    small = SAMPLES[0]
    assert runner.auto_jobs([str(small)]) == 1  # a sample is far below the threshold
    monkeypatch.setattr(runner, "JOBS_MIN_BYTES", small.stat().st_size)
    assert runner.auto_jobs([str(small)]) == 2
    assert runner.auto_jobs([str(small), str(small)]) == 1  # the same file twice
    assert runner.auto_jobs(["-"]) == 1  # a pipe is read once
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert runner.auto_jobs([str(fifo)]) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert runner.auto_jobs([str(small)]) == runner.MAX_AUTO_JOBS  # not 64 interpreters by default
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert runner.auto_jobs([str(small)]) == 1  # one core: no second process


def test_a_file_that_changes_while_the_shares_read_it_is_read_again_in_one_process(lab_capture, monkeypatch):
    from dissect.port902.archive import parallel

    calls = []
    real_run, real_stamps = parallel.run_chains, parallel._stamps
    stamps = iter([[(1, 1)], [(2, 2)]])  # the file's size and mtime before and after the shares: changed
    monkeypatch.setattr(parallel, "_stamps", lambda names: next(stamps))
    monkeypatch.setattr(parallel, "run_chains", lambda *a, **kw: calls.append(kw["jobs"]) or real_run(*a, **kw))
    result = analyze_shared(lab_capture, jobs=2)
    assert calls == [2, 1]
    assert _doc(result) == _doc(analyze(lab_capture, skip_unreadable=True))
    assert real_stamps([os.fspath(lab_capture)]) == real_stamps([os.fspath(lab_capture)])  # a file at rest: equal


def test_without_worker_processes_the_same_analysis_runs_in_one(monkeypatch):
    from dissect.port902.archive import parallel

    def no_pool(*_a, **_kw):
        raise OSError(38, "Function not implemented")  # e.g. no POSIX semaphores in a sandbox

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    sample = ROOT / "samples" / "classic-esx-handoff.pcap"
    assert _doc(analyze_shared(sample, jobs=2)) == _doc(analyze(sample, skip_unreadable=True))


def test_shares_cover_every_slot_once():
    for count in range(1, 6):
        for caller in (0.0, 0.01, 0.2, 1 / count):
            parts = shares(count, caller)
            assert len(parts) == count and all(p[2] == SLOTS for p in parts)
            assert parts[0] == (0, round(SLOTS * caller) if count > 1 else SLOTS, SLOTS)
            covered = [slot for lo, hi, _n in parts for slot in range(lo, hi)]
            assert covered == list(range(SLOTS))  # in order, each once


def test_caller_takes_fewer_connections_where_side_analyses_are_busy(lab_capture, tmp_path):
    from dissect.port902.analysis import default_observers
    from dissect.port902.lab.pcapwriter import CaptureWriter
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP

    observers = default_observers()
    assert caller_fraction([os.fspath(lab_capture)], 2, []) == 0.5  # no side analyses: even
    assert caller_fraction([str(tmp_path / "missing.pcap")], 2, observers) == 0.5
    busy = tmp_path / "dns-busy.pcap"  # nothing but DNS queries
    with CaptureWriter(str(busy)) as w:
        for i in range(4000):
            w.write(1.0 + i / 1000, bytes(IP(src="10.0.0.9", dst="10.0.0.53") / UDP(sport=40000 + i % 2000, dport=53)
                                          / DNS(id=i, qd=DNSQR(qname=f"host{i}.example"))))
    side, authd = parallel._sample(busy)
    assert (side, authd) == (4000, 0)
    assert caller_fraction([str(busy)], 2, observers) == 0.0  # only side work there: the workers take the connections
    lab = caller_fraction([os.fspath(lab_capture)], 2, observers)
    assert 0.0 <= lab <= 0.5


def test_any_split_and_handing_back_give_the_serial_result(lab_capture, monkeypatch):
    serial = _doc(analyze(lab_capture, skip_unreadable=True))
    for caller in (0.0, 0.1, 0.5):
        monkeypatch.setattr(parallel, "caller_fraction", lambda *_a, _c=caller: _c)
        assert _doc(analyze_shared(lab_capture, jobs=2)) == serial, caller

    class Done:  # the caller finished first: a worker hands back everything it has not judged
        @staticmethod
        def is_set():
            return True

    monkeypatch.setattr(parallel, "_CALLER_DONE", Done)
    judged, rest = _share([os.fspath(lab_capture)], shares(2, 0.0)[1], _options({}))
    assert judged == [] and len(rest) == len(json.loads(serial)["sessions"])
    assert [judge(r).to_dict() for r in rest] == [s.to_dict() for s in analyze(lab_capture).sessions]
