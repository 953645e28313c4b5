"""Archives in parallel (issue 11): local processes and a distributed.LocalCluster give the
serial result exactly (the whole JSON document), and the Dask frames have the declared columns."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dissect.port902.archive import analyze_archive

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(list((ROOT / "samples").glob("*.pcap*")) + list((ROOT / "samples" / "doctor").glob("*.pcap*")))


def _doc(result) -> str:
    return json.dumps(result.to_dict(records=True), sort_keys=True, default=str)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Two sensors: every sample (one sensor, rotated across files) and a long lab capture split by editcap."""
    from dissect.port902.cli.main import main

    base = tmp_path_factory.mktemp("par")
    samples = base / "arch" / "samples"
    samples.mkdir(parents=True)
    for i, s in enumerate(SAMPLES):
        shutil.copy(s, samples / f"{i:02d}-{s.name}")
    assert main(["lab", "generate", "-o", str(base / "lab"), "-n", "1", "--seed", "5", "--sessions", "25",
                 "--max-bytes", "2M", "--max-console", "3600", "-q"]) == 0
    lab = base / "arch" / "lab"
    lab.mkdir()
    subprocess.run(["editcap", "-c", "3000", str(next((base / "lab").glob("*.pcap"))), str(lab / "r.pcap")], check=True)
    return base / "arch"


@pytest.mark.tools("editcap")
@pytest.mark.parametrize("jobs", [2, 3])
def test_local_processes_equal_serial(archive, jobs):
    serial = analyze_archive(archive)
    assert len(serial.chains) == 2 and len(serial.sessions) > 40
    assert _doc(analyze_archive(archive, jobs=jobs)) == _doc(serial)


@pytest.mark.tools("editcap")
def test_local_cluster_equals_serial_and_frames_are_dask(archive):
    distributed = pytest.importorskip("distributed")
    dd = pytest.importorskip("dask.dataframe")
    from dissect.port902.model.schema import SCHEMAS

    serial = analyze_archive(archive)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = analyze_archive(archive, client=client)
    assert _doc(result) == _doc(serial)
    for table in ("sessions", "tls_records", "handshakes", "logins", "weird", "handoffs", "features", "findings"):
        frame = getattr(result, f"{table}_frame")()
        assert isinstance(frame, dd.DataFrame)
        assert list(frame.columns) == list(SCHEMAS[table])
        pandas = getattr(serial.analysis, f"{table}_frame")()
        assert [str(t) for t in frame.dtypes] == [str(t) for t in pandas.dtypes]
        assert len(frame.compute()) == len(pandas)


@pytest.mark.tools("editcap")
def test_cli_jobs_and_scheduler_equal_serial(archive, capsys):
    from dissect.port902.cli.main import main

    assert main(["analyze", "-q", "-f", "json", str(archive)]) == 0
    serial = capsys.readouterr().out
    assert json.loads(serial)["sessions"]
    assert main(["analyze", "-q", "-f", "json", "--jobs", "2", str(archive)]) == 0
    assert capsys.readouterr().out == serial
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert main(["analyze", "-q", "-f", "json", "--scheduler", cluster.scheduler_address, str(archive)]) == 0
    assert capsys.readouterr().out == serial
