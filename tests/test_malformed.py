"""Malformed packets on watched ports are counted and reported as weird rows, the same by
both capture engines, instead of being dropped silently (issue 13)."""

import struct

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.io import native
from dissect.port902.io.capture import CaptureReader
from dissect.port902.io.decode import MAX_MALFORMED_WARNINGS
from dissect.port902.lab.pcapwriter import CaptureWriter

C, S = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def tcp(sport=40000, dport=902, doff=5, ihl=5, total=None, payload=b"x" * 10):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, doff << 4, 0x18, 65535, 0, 0)
    opts = b"\0" * ((ihl - 5) * 4) if ihl >= 5 else b""
    length = total if total is not None else 4 * max(ihl, 5) + 20 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 0, 0, 64, 6, 0, C, S) + opts
    return ip + hdr + payload


BAD = [tcp(doff=2), tcp(total=30), tcp(doff=0, dport=903)]
GOOD = [tcp(), tcp(payload=b"ok")]


def write(path, packets):
    with CaptureWriter(str(path)) as w:
        for i, p in enumerate(packets):
            w.write(1.7e9 + i * 0.01, p)
    return path


ENGINES = ["python"] + (["c"] if native._fastscan is not None else [])


@pytest.mark.parametrize("engine", ENGINES)
def test_each_malformed_packet_is_a_warning(tmp_path, engine):
    path = write(tmp_path / "m.pcap", GOOD[:1] + BAD + GOOD[1:])
    with CaptureReader(path, engine=engine) as r:
        pkts = list(r)
    assert [p.frame for p in pkts] == [1, 5]
    warned = [w for w in r.stats.warnings if w.kind == "malformed_packet"]
    assert [w.frame for w in warned] == [2, 3, 4]
    assert r.stats.malformed == 3
    assert "data offset 2" in warned[0].detail and "total length 30" in warned[1].detail


def test_engines_agree_on_malformed_packets(tmp_path):
    if len(ENGINES) < 2:
        pytest.skip("C engine not built")
    path = write(tmp_path / "m.pcap", (GOOD + BAD) * 3)
    out = []
    for engine in ENGINES:
        with CaptureReader(path, engine=engine) as r:
            out.append((list(r), r.stats))
    assert out[0] == out[1]


def test_many_malformed_packets_are_counted_not_all_kept(tmp_path):
    n = MAX_MALFORMED_WARNINGS + 50
    result = analyze(write(tmp_path / "flood.pcap", [tcp(doff=1)] * n))
    rows = [w for w in result.weird if w.kind == "malformed_packet"]
    assert len(rows) == MAX_MALFORMED_WARNINGS + 1
    assert f"({n} in all)" in rows[-1].detail
    assert result.captures[0].malformed == n
