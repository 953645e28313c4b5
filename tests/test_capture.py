"""Capture front end: formats, link types, timestamps, damage, and the fast-path filter.

Packets are crafted with scapy (the right tool for one-off packets) and written with the
lab's CaptureWriter in every format/link/byte-order/resolution combination.
"""

import gzip
import io
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt
from scapy.packet import Raw

from dissect.port902.io.capture import CaptureReader, Selection
from dissect.port902.errors import CaptureError
from dissect.port902.lab.pcapwriter import CaptureWriter

GREETING = b"220 VMware Authentication Daemon Version 1.10: SSL Required\r\n"
TS0 = 1_700_000_000.123456


def tcp4(sport, dport, payload=b"", flags="PA", src="10.0.0.1", dst="10.0.0.2", seq=1000):
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq) / Raw(payload))


def tcp6(sport, dport, payload=b"", ext=False):
    ip = IPv6(src="fd00::1", dst="fd00::2")
    if ext:
        ip = ip / IPv6ExtHdrDestOpt()
    return bytes(ip / TCP(sport=sport, dport=dport, flags="PA") / Raw(payload))


PACKETS = [
    tcp4(50000, 443, b"x" * 100),  # 1 background: dropped by the fast path
    tcp4(50001, 902, flags="S"),  # 2 SYN to 902
    tcp4(902, 50001, GREETING, src="10.0.0.2", dst="10.0.0.1"),  # 3 banner
    bytes(IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=5353, dport=53) / Raw(b"q" * 20)),  # 4 DNS: dropped
    tcp6(50002, 903, b"\x16\x03\x01\x00\x05hello"),  # 5 IPv6 to 903
    tcp6(50003, 912, b"USER root\r\n", ext=True),  # 6 IPv6 with an extension header
    tcp4(4444, 55555, GREETING, src="10.9.9.9", dst="10.0.0.1"),  # 7 authd on an odd port
    tcp4(55555, 4444, b"\x16\x03\x01", src="10.0.0.1", dst="10.9.9.9"),  # 8 follow that port
]
EXPECTED_FRAMES = [2, 3, 5, 6, 7, 8]


def write(tmp_path, name="t.pcap", packets=PACKETS, **kw):
    path = tmp_path / name
    with CaptureWriter(str(path), **kw) as w:
        for i, p in enumerate(packets):
            w.write(TS0 + i * 0.5, p)
    return path


COMBOS = [
    dict(fmt="pcap", link="ethernet"),
    dict(fmt="pcap", link="ethernet", byteorder=">"),
    dict(fmt="pcap", link="ethernet", ts_resolution="ns"),
    dict(fmt="pcap", link="vlan"),
    dict(fmt="pcap", link="qinq"),
    dict(fmt="pcap", link="sll"),
    dict(fmt="pcap", link="sll2"),
    dict(fmt="pcap", link="raw"),
    dict(fmt="pcap", link="null"),
    dict(fmt="pcap", link="loop"),
    dict(fmt="pcapng", link="ethernet"),
    dict(fmt="pcapng", link="ethernet", byteorder=">", ts_resolution="ns"),
    dict(fmt="pcapng", link="sll2", block="opb"),
    dict(fmt="pcapng", link="raw", byteorder=">", block="opb"),
    dict(fmt="pcap", link="ethernet", compress=True),
    dict(fmt="pcapng", link="vlan", compress=True),
]


@pytest.mark.parametrize("kw", COMBOS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_formats_and_link_types(tmp_path, kw):
    path = write(tmp_path, **kw)
    with CaptureReader(path) as r:
        pkts = list(r)
    assert [p.frame for p in pkts] == EXPECTED_FRAMES
    assert r.stats.packets == len(PACKETS)
    assert r.stats.warnings == []
    banner = pkts[1]
    assert (banner.sport, banner.dport, banner.payload) == (902, 50001, GREETING)
    assert banner.src == bytes([10, 0, 0, 2])
    assert pkts[2].src == bytes.fromhex("fd000000000000000000000000000001") and pkts[2].dport == 903
    assert pkts[3].payload == b"USER root\r\n"
    assert pkts[4].sport == 4444 and pkts[5].dport == 4444  # followed after the greeting
    expected_ts = TS0 + 2 * 0.5
    tolerance = 1e-9 if kw.get("ts_resolution") == "ns" else 1e-6
    assert banner.ts == pytest.approx(expected_ts, abs=tolerance)


def test_spb_has_no_timestamp_but_is_read(tmp_path):
    path = write(tmp_path, "spb.pcapng", fmt="pcapng", link="ethernet", block="spb")
    with CaptureReader(path) as r:
        assert [p.frame for p in r] == EXPECTED_FRAMES


def test_pcapng_several_interfaces_with_own_link_and_resolution(tmp_path):
    path = tmp_path / "multi.pcapng"
    with CaptureWriter(str(path), fmt="pcapng", link="ethernet") as w:
        second = w.add_interface("raw", ts_resolution="ns")
        w.write(TS0, PACKETS[1])
        w.write(TS0 + 1.000000001, PACKETS[2], interface=second)
    with CaptureReader(path) as r:
        pkts = list(r)
        assert r.stats.link_types == ["ETHERNET", "RAW"]
    assert [p.dport for p in pkts] == [902, 50001]
    assert pkts[1].ts == pytest.approx(TS0 + 1.000000001, abs=2e-7)


def test_truncated_file_keeps_what_came_before(tmp_path):
    path = write(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-30])
    with CaptureReader(cut) as r:
        pkts = list(r)
    assert [p.frame for p in pkts] == EXPECTED_FRAMES[:-1]
    (w,) = r.stats.warnings
    assert w.kind == "truncated_file" and w.frame == len(PACKETS)
    # the offset names where the cut record starts
    assert 0 < w.offset < len(data) - 30


def test_corrupt_record_length_stops_with_a_warning(tmp_path):
    path = write(tmp_path)
    data = bytearray(path.read_bytes())
    # the third record header: walk two records from offset 24
    off = 24
    for _ in range(2):
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    struct.pack_into("<I", data, off + 8, 0x7FFFFFF0)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    with CaptureReader(bad) as r:
        pkts = list(r)
    assert [p.frame for p in pkts] == [2]
    assert r.stats.warnings[0].kind == "corrupt_record" and r.stats.warnings[0].offset == off


def test_corrupt_pcapng_block_length(tmp_path):
    path = write(tmp_path, "x.pcapng", fmt="pcapng")
    data = bytearray(path.read_bytes())
    pos = data.rfind(struct.pack("<I", 6))  # last EPB type field
    struct.pack_into("<I", data, pos + 4, 7)  # not a multiple of 4
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(bytes(data))
    with CaptureReader(bad) as r:
        list(r)
    assert r.stats.warnings[-1].kind == "corrupt_record"


def test_truncated_gzip_stream(tmp_path):
    path = write(tmp_path, "z.pcap.gz", compress=True)
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(data[: len(data) - 40])
    with CaptureReader(cut) as r:
        list(r)
    assert any(w.kind == "truncated_file" for w in r.stats.warnings)


@pytest.mark.parametrize("content", [b"", b"\x00" * 40, b"hello world, not a capture", b"\xd4\xc3"])
def test_not_a_capture_is_a_clear_error(tmp_path, content):
    p = tmp_path / "junk"
    p.write_bytes(content)
    with pytest.raises(CaptureError, match="junk"):
        CaptureReader(p)


def test_missing_file_is_a_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="cannot open"):
        CaptureReader(tmp_path / "nope.pcap")


def test_snaplen_truncation_keeps_declared_length(tmp_path):
    big = tcp4(50001, 902, b"A" * 1000)
    path = write(tmp_path, packets=[big], snaplen=200)
    with CaptureReader(path) as r:
        (p,) = list(r)
    assert p.payload_len == 1000 and len(p.payload) == 200 - 14 - 40


def test_udp_and_icmp_only_when_asked(tmp_path):
    from scapy.layers.inet import ICMP

    icmp = bytes(IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=3, code=13) / bytes(IP(dst="10.0.0.2") / TCP(dport=902))[:28])
    hb = bytes(IP(src="10.0.0.2", dst="10.0.0.5") / UDP(sport=902, dport=902) / Raw(b"\xa4" + b"\0" * 65))
    path = write(tmp_path, packets=[icmp, hb])
    with CaptureReader(path) as r:
        assert list(r) == []
    with CaptureReader(path, Selection(udp_ports={902}, icmp_errors=True)) as r:
        got = list(r)
    assert [(p.proto, p.sport, p.dport) for p in got] == [(1, 3, 13), (17, 902, 902)]


def test_memory_stays_flat_with_small_chunks(tmp_path):
    """Records straddling chunk boundaries are reassembled (chunk far smaller than a record)."""
    path = write(tmp_path)
    with CaptureReader(path, chunk_size=7) as r:
        assert [p.frame for p in r] == EXPECTED_FRAMES


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.sampled_from(["pcap", "pcapng"]))
def test_fuzz_body_never_raises(tmp_path, junk, fmt):
    path = write(tmp_path, "f." + fmt, packets=PACKETS[:3], fmt=fmt)
    data = path.read_bytes()
    (tmp_path / "fz").write_bytes(data + junk)
    (tmp_path / "fz2").write_bytes(data[: len(data) // 2] + junk)
    for name in ("fz", "fz2"):
        with CaptureReader(tmp_path / name) as r:
            for _ in r:
                pass


def test_fileobj_like_gzip_of_pcapng(tmp_path):
    buf = io.BytesIO()
    with CaptureWriter(buf, fmt="pcapng") as w:
        w.write(TS0, PACKETS[2])
    p = tmp_path / "g.pcapng.gz"
    p.write_bytes(gzip.compress(buf.getvalue()))
    with CaptureReader(p) as r:
        assert [x.payload for x in r] == [GREETING]
