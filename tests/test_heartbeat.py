"""UDP 902 heartbeats: the vmware_hb layout, build names, and never authd."""

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902.proto import heartbeat as hb
from dissect.port902.analysis import analyze
from dissect.port902.infer.diagnose import Diagnostics
from dissect.port902.errors import Malformed
from dissect.port902.lab import background

DOCTOR = Path(__file__).resolve().parent.parent / "samples" / "doctor"


def literal(build=22380479, key=b"52a1f3c9", ip=b"10.40.0.11", counter=5, pad=True) -> bytes:
    body = (struct.pack("<IIIB", 0x000103A4, build, 1, len(key)) + key
            + struct.pack("<iiiIB", 7, 3, 1, counter, len(ip)) + ip)
    return body + (bytes(66 - len(body)) if pad else b"")


def test_byte_literal_fields():
    h = hb.parse(literal())
    assert (h.magic, h.build, h.server_id, h.host_key) == (0x000103A4, 22380479, 1, "52a1f3c9")
    assert (h.change_gen, h.spec_gen, h.bundle_version, h.counter, h.host_ip) == (7, 3, 1, 5, "10.40.0.11")
    assert h.length == 66 and h.ndpi_shape and h.signature_len == 66 - (13 + 8 + 17 + 10)
    assert h.version == "ESXi 8.0 Update 2"


def test_lab_heartbeat_parses():
    h = hb.parse(background.vpxa_heartbeat(9, "10.50.0.12", build=18644231))
    assert h.counter == 9 and h.host_ip == "10.50.0.12" and h.version == "ESXi 7.0 Update 3" and h.ndpi_shape


@pytest.mark.parametrize("build,name", [(4600944, "ESXi 6.0 Patch 4"), (15843807, "ESXi 7.0 GA"),
                                        (1331820, "ESXi 5.5 GA"), (12345, None), (None, None)])
def test_build_table(build, name):
    assert hb.esxi_version(build) == name


def test_not_ndpi_shape_without_padding():
    h = hb.parse(literal(pad=False))
    assert not h.ndpi_shape and h.signature_len == 0


@pytest.mark.parametrize("data,why", [
    (b"", "fixed head"),
    (b"\xa4\x03\x01\x00" + bytes(8), "fixed head"),
    (struct.pack("<IIIB", 1, 2, 3, 200) + bytes(300), "host key of 200"),
    (struct.pack("<IIIB", 1, 2, 3, 8) + b"abc", "run past"),
    (literal(ip=b"10.1"), "IPv4 text"),
    (literal(ip=b"10.40.0.300"), "dotted"),
    (literal(ip=b"not.an.ip.ad"), "dotted"),
    (literal(key=b"\x1b[2J"), "printable"),
    (b"220 VMware Authentication Daemon Version 1.10: SSL Required\r\n", "host key|run past|IPv4|printable"),
])
def test_malformed(data, why):
    with pytest.raises(Malformed, match=why):
        hb.parse(data)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_fuzz_never_crashes(data):
    try:
        h = hb.parse(data)
    except Malformed:
        return
    assert h.length == len(data) and 0 <= h.signature_len <= len(data)


@settings(max_examples=200)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.from_regex(r"[0-9a-f]{0,16}", fullmatch=True), st.ip_addresses(v=4))
def test_round_trip(build, counter, key, ip):
    h = hb.parse(literal(build, key.encode(), str(ip).encode(), counter))
    assert (h.build, h.counter, h.host_key, h.host_ip) == (build, counter, key, str(ip))


def test_capture_summary_and_never_authd():
    result = analyze(DOCTOR / "heartbeats.pcap", observers=[Diagnostics()])
    assert result.sessions == []  # UDP 902 never becomes an authd session
    diag = result.extras["diagnostics"]
    flows = {h["esxi"]: h for h in diag.to_json()["heartbeats"]}
    assert flows["10.40.0.11"]["version"] == "ESXi 8.0 Update 2" and flows["10.40.0.11"]["build"] == 22380479
    assert flows["10.40.0.12"]["version"] == "ESXi 7.0 Update 3"
    assert flows["10.40.0.27"]["build"] == 99999999 and flows["10.40.0.27"]["version"] is None
    for ip in ("10.40.0.11", "10.40.0.12", "10.40.0.27"):
        f = flows[ip]
        assert f["vcenter"] == "10.40.0.5" and f["heartbeats"] == 4 and f["interval_s"] == 10.0
        assert f["rate_per_min"] == 6.0 and f["counter_first"] == 1 and f["counter_last"] == 4 and f["host_ip"] == ip
    odd = flows["10.40.0.99"]
    assert odd["heartbeats"] == 0 and odd["not_heartbeat"] == 1 and odd["not_heartbeat_frames"] == [5]
    assert diag.findings == []
    df = diag.heartbeats_frame()
    assert len(df) == 4 and str(df["build"].dtype) == "Int64" and df["version"].isna().sum() == 2
