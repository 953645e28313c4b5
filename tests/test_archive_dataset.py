"""Archive Parquet datasets (issue 11): hive layout, declared schema with docs, dtype round
trip, and incremental runs that read only new files and re-stitch the boundary."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

from dissect.port902.analysis import analyze  # noqa: E402
from dissect.port902.archive import analyze_archive  # noqa: E402
from dissect.port902.archive.dataset import MANIFEST, TABLES, read_table, write_dataset  # noqa: E402
from dissect.port902.io.chain import first_timestamp  # noqa: E402
from dissect.port902.model.schema import SCHEMAS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> dict:
    """A lab capture and the same traffic 3 h later, merged and split by editcap -i 600 into
    rotated pieces named against time order."""
    from dissect.port902.cli.main import main

    base = tmp_path_factory.mktemp("arch")
    assert main(["lab", "generate", "-o", str(base / "lab"), "-n", "1", "--seed", "11", "--sessions", "30",
                 "--max-bytes", "2M", "--max-console", "7200", "-q"]) == 0
    a = next((base / "lab").glob("*.pcap"))
    subprocess.run(["editcap", "-t", "10800", str(a), str(base / "later.pcap")], check=True)
    whole = base / "whole.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(whole), str(a), str(base / "later.pcap")], check=True)
    ring = base / "ring"
    ring.mkdir()
    subprocess.run(["editcap", "-F", "pcap", "-i", "600", str(whole), str(ring / "x.pcap")], check=True)
    pieces = sorted(ring.iterdir())
    for i, p in enumerate(pieces):
        p.rename(ring / f"esx.pcap.{len(pieces) - 1 - i}")
    ordered = sorted(ring.iterdir(), key=lambda p: (first_timestamp(p) is None, first_timestamp(p) or 0, p.name))
    return {"whole": whole, "ring": ring, "ordered": ordered}


def _key(frame):
    cols = [c for c in frame.columns if c not in ("date",)]
    return frame[cols].sort_values(["start", "first_frame"]).reset_index(drop=True)


@pytest.mark.tools("editcap", "mergecap")
def test_dataset_layout_schema_and_dtypes(archive, tmp_path):
    out = tmp_path / "ds"
    write_dataset([archive["ring"]], str(out))
    result = analyze_archive(archive["ring"])
    for table in TABLES:
        assert (out / table).is_dir()
        files = list((out / table).glob("date=*/*.parquet"))
        assert files and all(f.parent.name.startswith("date=") for f in files)
        schema = pq.read_schema(files[0])
        assert schema.metadata[b"dissect902.table"] == table.encode()
        for name, (dtype, doc) in SCHEMAS[table].items():
            field = schema.field(name)
            assert field.metadata[b"doc"].decode() == doc and field.metadata[b"dtype"].decode() == dtype
        back = read_table(str(out), table)
        mine = getattr(result.analysis, f"{table}_frame")()
        assert list(back.columns) == list(mine.columns) + ["date"]
        for col in mine.columns:  # the round trip keeps the declared dtypes
            assert str(back[col].dtype) == str(mine[col].dtype), (table, col)
        assert len(back) == len(mine)
    sessions = read_table(str(out), "sessions")
    assert sorted(sessions["date"].unique()) == sorted({d.strftime("%Y-%m-%d") for d in sessions["start"]})
    pd.testing.assert_frame_equal(_key(sessions), _key(result.analysis.sessions_frame()), check_categorical=False)
    # other engines read it as it is (both are in the test extra)
    import duckdb
    import polars as pl

    n = duckdb.sql(f"select count(*) from read_parquet('{out}/sessions/*/*.parquet', hive_partitioning=true)").fetchall()[0][0]
    assert n == len(sessions)
    frame = pl.scan_parquet(f"{out}/sessions/*/*.parquet", hive_partitioning=True).collect()
    assert frame.height == len(sessions) and set(mine_columns(result)) <= set(frame.columns)


def mine_columns(result) -> list[str]:
    return list(result.analysis.sessions_frame().columns)


@pytest.mark.tools("editcap", "mergecap")
def test_incremental_run_reads_only_new_files_and_restitches_the_boundary(archive, tmp_path):
    ordered = archive["ordered"]
    full = tmp_path / "full"
    write_dataset([archive["ring"]], str(full))
    grow = tmp_path / "grow"
    grow.mkdir()
    first = len(ordered) // 2 + 2  # ends inside the later copy: connections are open at the cut
    for p in ordered[:first]:
        shutil.copy2(p, grow / p.name)
    inc = tmp_path / "inc"
    m1 = write_dataset([grow], str(inc))
    (s1,) = m1["sensors"].values()
    assert 0 < s1["resume_index"] < first  # the early hours settled, the end did not
    again = write_dataset([grow], str(inc))
    assert [p["read"] for p in again["plan"].values()] == [[]]  # nothing new: nothing read
    for p in ordered[first:]:
        shutil.copy2(p, grow / p.name)
    m2 = write_dataset([grow], str(inc))
    (plan,) = m2["plan"].values()
    assert plan["first_file"] == s1["resume_index"]
    assert len(plan["read"]) < len(ordered) and plan["first_file"] < first  # boundary file read again
    manifest = json.loads((inc / MANIFEST).read_text())
    assert len(next(iter(manifest["sensors"].values()))["files"]) == len(ordered) and manifest["runs"] == 3
    for table in ("sessions", "handoffs", "tls_records", "features", "logins"):
        a, b = read_table(str(inc), table), read_table(str(full), table)
        a = a.drop(columns=["source", "sources"], errors="ignore")
        b = b.drop(columns=["source", "sources"], errors="ignore")
        sort = [c for c in ("uid", "start", "first_frame", "ts", "frame", "from_session") if c in a.columns]
        pd.testing.assert_frame_equal(a.sort_values(sort).reset_index(drop=True),
                                      b.sort_values(sort).reset_index(drop=True), check_categorical=False)
    whole = analyze(archive["whole"])
    sessions = read_table(str(inc), "sessions")
    assert len(sessions) == len(whole.sessions)
    assert sorted(zip(sessions["orig_port"], sessions["first_frame"], sessions["orig_bytes"], sessions["feature"].astype(str))) \
        == sorted((s.client_port, s.first_frame, s.bytes[0], s.feature) for s in whole.sessions)
