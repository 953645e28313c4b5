"""The C engine of the capture reader (``dissect/port902/_fastscan.c``) against the pure-Python one.

Both engines must select exactly the same packets (every field), count the same frames, learn
the same authd ports and report the same damage (kind, offset, frame, text) on: every bundled
sample, the format/link-type matrix of ``test_capture.py``, truncated and corrupted files, and
random bytes appended to or spliced into valid captures.  The C scanner must never crash, read
out of bounds or loop forever; run this file under ``python -X dev`` too.

The engines are compared like for like: the C engine over a memory-mapped file against the
pure-Python engine reading the (small) file in one chunk, and both engines with the same small
``chunk_size`` (records straddling chunk boundaries, the C engine's read path).
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from dissect.port902.io import capture, engine, native, packet
from dissect.port902.io.capture import CaptureReader, Selection
from dissect.port902.errors import CaptureError
from dissect.port902.lab.pcapwriter import CaptureWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_capture import COMBOS, GREETING, PACKETS, TS0, tcp4, tcp6  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_FILES = sorted(p for p in list(SAMPLES.glob("*")) + list(SAMPLES.glob("doctor/*"))
                      if p.suffix in (".pcap", ".pcapng", ".gz"))

fastscan = capture._fastscan
if fastscan is None and os.environ.get("CI"):
    raise RuntimeError("the C engine (dissect.port902.io._fastscan) was not built; CI must build it")
pytestmark = pytest.mark.skipif(fastscan is None, reason="C engine not built (no compiler?)")

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# more kinds of packet than test_capture's PACKETS: UDP, ICMP errors, control ports, fragments,
# a TCP header cut by the snaplen, a greeting on an unusual port and traffic on it afterwards
EXTRA = [
    bytes(IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=5353, dport=53) / Raw(b"q" * 20)),
    bytes(IP(src="10.0.0.2", dst="10.0.0.5") / UDP(sport=902, dport=902) / Raw(b"\xa4" + b"\0" * 65)),
    bytes(IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=3, code=13)
          / bytes(IP(dst="10.0.0.2") / TCP(dport=902))[:28]),
    bytes(IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=8)),  # echo: never kept
    bytes(IPv6(src="fd00::9", dst="fd00::1", nh=58) / Raw(b"\x01\x04\x00\x00" + b"\0" * 44)),  # ICMPv6 unreachable
    tcp4(50010, 443, flags="S"),
    tcp4(50010, 443, b"\x16\x03\x01\x00\x10" + b"h" * 16),
    tcp4(50010, 443, b"GET / HTTP/1.1\r\n\r\n"),
    tcp4(50010, 443, b"\x17\x03\x03\x00\x10" + b"e" * 16),  # application data on 443: dropped
    bytes(IP(src="10.0.0.1", dst="10.0.0.2", frag=10) / Raw(b"z" * 40)),  # non-first fragment
    bytes(IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / TCP(sport=50020, dport=902) / Raw(b"frag")),
    tcp4(7777, 50030, GREETING, src="10.7.7.7"),
    tcp4(50030, 7777, b"\x16\x03\x01\x00\x05hello", dst="10.7.7.7"),
    tcp6(50040, 902, b"v6 " * 30),
]
ALL_PACKETS = PACKETS + EXTRA
WIDE = dict(tcp_control_ports={443}, udp_ports={53, 902}, icmp_errors=True)


def wide_selection():
    return Selection(tcp_control_ports={443}, udp_ports={53, 902}, icmp_errors=True)


def write(path, packets=ALL_PACKETS, **kw):
    with CaptureWriter(str(path), **kw) as w:
        for i, p in enumerate(packets):
            w.write(TS0 + i * 0.25, p)
    return path


def read(path, engine, selection=None, **kw):
    """Everything the reader produces, or the exception it raised."""
    sel = selection() if selection else Selection()
    try:
        with CaptureReader(path, sel, engine=engine, **kw) as r:
            pkts = list(r)
    except Exception as exc:  # noqa: BLE001 - compared between engines
        return ("raised", type(exc).__name__, str(exc))
    return ("ok", pkts, r.stats, sorted(map(repr, sel.tcp_ports)))


def assert_same(path, selection=None, chunk_sizes=(None, 7, 100)):
    """C (memory-mapped) == pure Python; and C == pure Python with the same chunk size."""
    ref = read(path, "python", selection)
    got = read(path, "c", selection)
    assert got == ref, f"{path}: C engine (mmap) differs from the pure-Python engine"
    for cs in chunk_sizes:
        if cs is None:
            continue
        ref_c = read(path, "python", selection, chunk_size=cs)
        got_c = read(path, "c", selection, chunk_size=cs, use_mmap=False)
        assert got_c == ref_c, f"{path}: C engine differs with chunk_size={cs}"
    return ref


# --------------------------------------------------------------------------- engines


def test_engine_choice(tmp_path, monkeypatch):
    path = write(tmp_path / "e.pcap")
    monkeypatch.delenv("DISSECT902_PURE_PYTHON", raising=False)
    with CaptureReader(path) as r:
        assert r.engine == "c"
    monkeypatch.setenv("DISSECT902_PURE_PYTHON", "1")
    with CaptureReader(path) as r:
        assert r.engine == "python"
    with CaptureReader(path, engine="c") as r:
        assert r.engine == "c"
    monkeypatch.setenv("DISSECT902_PURE_PYTHON", "0")
    with CaptureReader(path) as r:
        assert r.engine == "c"
    with pytest.raises(ValueError, match="engine"):
        CaptureReader(path, engine="rust")


def test_fallback_when_extension_missing(tmp_path, monkeypatch):
    path = write(tmp_path / "f.pcap")
    monkeypatch.setattr(native, "_fastscan", None)
    assert capture.default_engine() == "python"
    with CaptureReader(path) as r:
        assert r.engine == "python"
        assert [p.frame for p in r]
    with pytest.raises(RuntimeError, match="not built"):
        CaptureReader(path, engine="c")


# --------------------------------------------------------------------------- real captures


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_samples_same_packets(path):
    ref = assert_same(path, chunk_sizes=(4096,))
    assert ref[0] == "ok" and ref[2].packets > 0
    assert_same(path, wide_selection, chunk_sizes=())


@pytest.mark.parametrize("kw", COMBOS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_format_link_matrix(tmp_path, kw):
    ext = ".pcapng" if kw["fmt"] == "pcapng" else ".pcap"
    path = write(tmp_path / ("m" + ext + (".gz" if kw.get("compress") else "")), **kw)
    ref = assert_same(path)
    assert ref[0] == "ok"
    frames = [p.frame for p in ref[1]]
    assert frames[:6] == [2, 3, 5, 6, 7, 8]  # test_capture's expectations hold for the C engine too
    assert "7777" in ref[3]  # the greeting on an unusual port was learned
    wide = assert_same(path, wide_selection, chunk_sizes=(64,))
    kept = {(p.proto, p.sport, p.dport) for p in wide[1]}
    assert (17, 5353, 53) in kept and (1, 3, 13) in kept and (6, 50010, 443) in kept


@pytest.mark.parametrize("block", ["spb", "opb"])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_pcapng_blocks_both_orders(tmp_path, block, byteorder):
    path = write(tmp_path / "b.pcapng", fmt="pcapng", block=block, byteorder=byteorder)
    assert_same(path, wide_selection)


def test_several_interfaces_and_sections(tmp_path):
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    with CaptureWriter(str(a), fmt="pcapng", link="ethernet") as w:
        raw = w.add_interface("raw", ts_resolution="ns")
        sll2 = w.add_interface("sll2")
        for i, p in enumerate(ALL_PACKETS):
            w.write(TS0 + i, p, interface=(0, raw, sll2)[i % 3])
    write(b, fmt="pcapng", byteorder=">", link="vlan")
    both = tmp_path / "ab.pcapng"
    both.write_bytes(a.read_bytes() + b.read_bytes())  # a second section, other byte order
    ref = assert_same(both, wide_selection)
    assert ref[2].packets == 2 * len(ALL_PACKETS)


def hand_pcapng(*blocks: bytes) -> bytes:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    return shb + b"".join(blocks)


def block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def idb(linktype: int, options: bytes = b"") -> bytes:
    return block(1, struct.pack("<HHI", linktype, 0, 0) + options)


def epb(ifid: int, frame: bytes, incl: int | None = None) -> bytes:
    n = len(frame) if incl is None else incl
    return block(6, struct.pack("<IIIII", ifid, 0, 1000, n, len(frame)) + frame)


ETH = bytes(12) + b"\x08\x00"


@pytest.mark.parametrize("name,blocks", [
    ("unknown interface", [idb(1), epb(3, ETH + PACKETS[1])]),
    ("unsupported link", [idb(147), epb(0, PACKETS[1]), idb(1), epb(1, ETH + PACKETS[1])]),
    ("incl beyond block", [idb(1), epb(0, ETH + PACKETS[1], incl=5000), epb(0, ETH + PACKETS[2])]),
    ("other blocks skipped", [idb(1), block(5, b"\0" * 20), block(0xBAD, b"x" * 9), epb(0, ETH + PACKETS[2])]),
    ("tsresol and tsoffset", [idb(1, struct.pack("<HH", 9, 1) + b"\x83\0\0\0" + struct.pack("<HHq", 14, 8, 7)
                                  + struct.pack("<HH", 0, 0)), epb(0, ETH + PACKETS[2])]),
    ("short packet block at the end", [idb(1), epb(0, ETH + PACKETS[1]), struct.pack("<III", 6, 12, 12)]),
    ("short packet blocks inside", [idb(1), struct.pack("<III", 6, 12, 12), struct.pack("<IIII", 2, 16, 0, 16),
                                    epb(0, ETH + PACKETS[2])]),
    ("tsoffset cut at the end", [idb(1), epb(0, ETH + PACKETS[2]),
                                 struct.pack("<IIHHI", 1, 24, 1, 0, 0) + struct.pack("<HH", 14, 8)
                                 + struct.pack("<I", 24)]),
    ("bad byte-order magic", [idb(1), epb(0, ETH + PACKETS[2]),
                              struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0xDEADBEEF, 1, 0, -1, 28)]),
    ("bad block length", [idb(1), epb(0, ETH + PACKETS[2]), struct.pack("<II", 6, 13) + b"\0" * 9]),
    ("huge block length", [idb(1), epb(0, ETH + PACKETS[2]), struct.pack("<II", 6, 0x7FFFFFFC) + b"\0" * 30]),
    ("interface after packets", [idb(228), epb(0, PACKETS[1]), idb(1), epb(1, ETH + PACKETS[2]),
                                 epb(0, PACKETS[2])]),
])
def test_hand_made_pcapng(tmp_path, name, blocks):
    path = tmp_path / "h.pcapng"
    path.write_bytes(hand_pcapng(*blocks))
    ref = assert_same(path, chunk_sizes=(5, 64))
    assert ref[0] == "ok", ref  # damage is reported, never raised


def test_short_packet_block_is_a_warning_not_an_exception(tmp_path):
    path = tmp_path / "s.pcapng"
    path.write_bytes(hand_pcapng(idb(1), epb(0, ETH + PACKETS[1]), struct.pack("<III", 6, 12, 12)))
    for engine in ("python", "c"):
        with CaptureReader(path, engine=engine) as r:
            assert [p.frame for p in r] == [1]
        (w,) = r.stats.warnings
        assert (w.kind, w.frame) == ("corrupt_record", 2)


# --------------------------------------------------------------------------- damage


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_every_truncation(tmp_path, fmt):
    data = write(tmp_path / ("t." + fmt), fmt=fmt).read_bytes()
    path = tmp_path / "cut"
    for cut in range(len(data) - 1, 0, -3):
        path.write_bytes(data[:cut])
        assert_same(path, chunk_sizes=(97,))


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("word", [0xFFFFFFFF, 0x7FFFFFF0, 0x00000000, 0x0000FFFF, 0x0A0D0D0A, 0x00000006])
def test_corrupt_words(tmp_path, fmt, word):
    data = write(tmp_path / ("c." + fmt), fmt=fmt, snaplen=1500).read_bytes()
    path = tmp_path / "bad"
    for pos in range(0, len(data) - 4, 4):
        bad = bytearray(data)
        struct.pack_into("<I", bad, pos, word)
        path.write_bytes(bytes(bad))
        assert_same(path, chunk_sizes=())


def test_snaplen_cut_tcp_header_warns_the_same(tmp_path):
    path = write(tmp_path / "snap.pcap", packets=[tcp4(50001, 902, b"A" * 400)] * 3, snaplen=40)
    ref = assert_same(path)
    assert [w.kind for w in ref[2].warnings] == ["snaplen_truncated"] * 3


def test_udp_payload_stops_at_the_captured_end(tmp_path):
    """A UDP length beyond the captured bytes (snaplen, or a lying header) must not read the next record."""
    dns = bytes(IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=5353, dport=53) / Raw(b"q" * 200))
    liar = bytearray(bytes(IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=5353, dport=53) / Raw(b"r" * 20)))
    struct.pack_into("!H", liar, 24, 900)  # UDP length field: 900
    for snaplen, name in ((80, "cut.pcap"), (65535, "liar.pcap")):
        path = write(tmp_path / name, packets=[dns, bytes(liar), dns, tcp4(50001, 902, b"x" * 300)], snaplen=snaplen)
        ref = assert_same(path, wide_selection, chunk_sizes=(64,))
        udp = [p for p in ref[1] if p.proto == 17]
        short = [len(p.payload) < p.payload_len for p in udp]
        assert short == ([True] * 3 if snaplen == 80 else [False, True, False])


def test_truncated_gzip(tmp_path):
    data = write(tmp_path / "z.pcap.gz", compress=True).read_bytes()
    path = tmp_path / "cut.pcap.gz"
    for cut in (len(data) - 10, len(data) // 2, 30, 12):
        path.write_bytes(data[:cut])
        ref = assert_same(path, chunk_sizes=(50,))
        assert ref[0] == "raised" or any(w.kind == "truncated_file" for w in ref[2].warnings)


@pytest.mark.parametrize("content", [b"", b"\x00" * 40, b"\xd4\xc3\xb2\xa1" + b"\0" * 10])
def test_not_a_capture_same_error(tmp_path, content):
    path = tmp_path / "junk"
    path.write_bytes(content)
    ref = read(path, "python")
    assert ref[0] == "raised" and ref[1] == "CaptureError"
    assert read(path, "c") == ref


# --------------------------------------------------------------------------- fuzz


def _fuzz_base(tmp_path, fmt, order):
    return write(tmp_path / ("base." + fmt), packets=ALL_PACKETS[:: order or 1], fmt=fmt,
                 byteorder="<" if order > 0 else ">").read_bytes()


@FUZZ
@given(junk=st.binary(max_size=700), fmt=st.sampled_from(["pcap", "pcapng"]), order=st.sampled_from([1, -1]),
       where=st.floats(0, 1), mode=st.sampled_from(["append", "splice", "overwrite", "cut"]))
def test_fuzz_engines_agree(tmp_path, junk, fmt, order, where, mode):
    data = _fuzz_base(tmp_path, fmt, order)
    at = int(len(data) * where)
    if mode == "append":
        blob = data + junk
    elif mode == "splice":
        blob = data[:at] + junk + data[at:]
    elif mode == "overwrite":
        blob = data[:at] + junk + data[at + len(junk):]
    else:
        blob = data[:at] + junk
    path = tmp_path / "fz"
    path.write_bytes(blob)
    assert_same(path, wide_selection, chunk_sizes=(61,))


@FUZZ
@given(words=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 0xFFFFFFFF)), min_size=1, max_size=6),
       fmt=st.sampled_from(["pcap", "pcapng"]))
def test_fuzz_header_words(tmp_path, words, fmt):
    """Lengths, types, interface ids and byte-order magics are where parsers die: hit them."""
    data = bytearray(_fuzz_base(tmp_path, fmt, 1))
    for pos, val in words:
        pos = (pos % (len(data) - 4)) & ~3
        struct.pack_into("<I", data, pos, val)
    path = tmp_path / "hw"
    path.write_bytes(bytes(data))
    assert_same(path, wide_selection, chunk_sizes=(33,))


@FUZZ
@given(body=st.binary(min_size=0, max_size=2000), fmt=st.sampled_from(["pcap", "pcapng"]),
       link=st.sampled_from([1, 0, 101, 113, 276, 228, 229, 9999]))
def test_fuzz_random_bodies(tmp_path, body, fmt, link):
    """Valid headers followed by anything at all."""
    if fmt == "pcap":
        blob = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link) + body
    else:
        blob = hand_pcapng(idb(link)) + body
    path = tmp_path / "rb"
    path.write_bytes(blob)
    assert_same(path, wide_selection, chunk_sizes=(16,))


@FUZZ
@given(buf=st.binary(max_size=3000), off=st.integers(0, 3100), big=st.booleans(),
       limit=st.integers(0, 1 << 40), etoff=st.integers(-1, 40), l3off=st.integers(0, 40),
       flags=st.integers(0, 15), max_sel=st.integers(1, 5), ifaces=st.lists(st.tuples(
           st.sampled_from([capture._fastscan.IFACE_NONE if capture._fastscan else -32768, -1, 0, 12, 14]),
           st.integers(0, 40)), max_size=3))
def test_fuzz_scanner_directly(buf, off, big, limit, etoff, l3off, flags, max_sel, ifaces):
    """The scanner on its own, with any buffer, offset and parameters: no crash, sane answers."""
    from array import array

    ports = bytearray(65536)
    for p in (0, 902, 0x4141, 0xFFFF):
        ports[p] = 1
    ctl, udp = bytearray(ports), bytes(ports)
    for kind in ("pcap", "pcapng"):
        if kind == "pcap":
            res = fastscan.scan_pcap(buf, off, big, limit, etoff, l3off, 0, ports, ctl, udp, flags, 1 << 20, max_sel,
                                     capture.Packet, (10**6, 0))
        else:
            tab = array("i", [v for pair in ifaces for v in pair])
            tsinfo = [(10**9, 5), None][: len(ifaces)]
            res = fastscan.scan_pcapng(buf, off, big, tab, 0, ports, ctl, udp, flags, 1 << 20, max_sel,
                                       capture.Packet, tsinfo)
        new_off, frames, reason, hits, nexts = res
        assert reason in (0, 1, 2, 3)
        assert off <= new_off or reason == 0 and new_off == off
        assert len(hits) <= max_sel and len(nexts) == 8 * len(hits)
        last = off
        for i, h in enumerate(hits):
            nxt = engine._NEXT.unpack_from(nexts, 8 * i)[0]
            assert last < nxt <= len(buf)
            last = nxt
            if type(h) is capture.Packet:
                assert h.proto in (6, 17) and 1 <= h.frame <= frames and len(h.src) <= 16
                continue
            rec_off, nxt2, frame, p, incl, orig, l3, l4, ver, proto = h[:10]
            assert off <= rec_off < nxt2 == nxt and 1 <= frame <= frames
            assert ver in (4, 6) and proto in (1, 6, 17, 58)
            assert 0 <= l3 < len(buf)


def test_scanner_rejects_bad_arguments():
    maps = [bytearray(65536), bytearray(65536), bytearray(65536)]
    pk, ts = capture.Packet, (10**6, 0)
    with pytest.raises(ValueError):
        fastscan.scan_pcap(b"x" * 40, -1, False, 100, 12, 14, 0, *maps, 0, 100, 10, pk, ts)
    with pytest.raises(ValueError):
        fastscan.scan_pcap(b"x" * 40, 0, False, 100, 12, 14, 0, bytearray(10), maps[1], maps[2], 0, 100, 10, pk, ts)
    with pytest.raises(TypeError):
        fastscan.scan_pcap(b"x" * 40, 0, False, 100, 12, 14, 0, bytes(65536), maps[1], maps[2], 0, 100, 10, pk, ts)
    with pytest.raises(ValueError):
        fastscan.scan_pcapng(b"x" * 40, 0, False, b"abc", 0, *maps, 0, 100, 10, pk, [])
    with pytest.raises(ValueError):
        fastscan.scan_pcap(b"x" * 40, 0, False, 100, 12, 14, 0, *maps, 0, 0, 10, pk, ts)
    with pytest.raises(TypeError, match="tuple subclass"):
        fastscan.scan_pcap(b"x" * 40, 0, False, 100, 12, 14, 0, *maps, 0, 100, 10, dict, ts)
    with pytest.raises(TypeError, match="pair"):
        fastscan.scan_pcap(b"x" * 40, 0, False, 100, 12, 14, 0, *maps, 0, 100, 10, pk, 1000)
    with pytest.raises(TypeError, match="list"):
        fastscan.scan_pcapng(b"x" * 40, 0, False, b"", 0, *maps, 0, 100, 10, pk, ())


def test_no_python_object_per_uninteresting_packet():
    """The design rule, measured: scanning 20 000 background packets allocates ~nothing."""
    pkt = bytes(12) + b"\x08\x00" + tcp4(50000, 443, b"x" * 100)
    rec = struct.pack("<IIII", 1, 2, len(pkt), len(pkt)) + pkt
    buf = rec * 20_000
    maps = [packet._port_flags({902}), bytearray(65536), bytearray(65536)]
    args = (capture.Packet, (10**6, 0))
    fastscan.scan_pcap(buf, 0, False, 65535, 12, 14, 0, *maps, 2 | 8, 1 << 40, 100, *args)  # warm up
    before = sys.getallocatedblocks()
    off, frame, reason, hits, nexts = fastscan.scan_pcap(buf, 0, False, 65535, 12, 14, 0, *maps, 2 | 8, 1 << 40, 100,
                                                         *args)
    grown = sys.getallocatedblocks() - before
    assert (off, frame, reason, hits, nexts) == (len(buf), 20_000, 0, [], b"")
    assert grown < 50


# --------------------------------------------------------------------------- selection semantics


def test_consumer_changing_the_selection_mid_stream(tmp_path):
    """A consumer that widens the port set between two packets sees the same stream in both engines."""
    path = write(tmp_path / "mut.pcap", packets=[tcp4(50001, 902, flags="S")] + [tcp4(50010, 443, b"x")] * 3
                 + [tcp4(50001, 902, b"y")] + [tcp4(50010, 443, b"z")] * 2)

    def run(engine, use_mmap=None, chunk=capture.CHUNK_SIZE):
        sel = Selection()
        out = []
        with CaptureReader(path, sel, engine=engine, use_mmap=use_mmap, chunk_size=chunk) as r:
            for p in r:
                out.append(p.frame)
                if p.frame == 1:
                    sel.tcp_ports.add(443)
                if p.frame == 5:
                    sel.tcp_ports.discard(443)
        return out

    ref = run("python")
    assert ref == [1, 2, 3, 4, 5]
    assert run("c") == ref
    assert run("c", use_mmap=False, chunk=50) == run("python", chunk=50)


def test_greeting_port_learned_when_its_packet_is_handed_out(tmp_path):
    path = write(tmp_path / "g.pcap", packets=[tcp4(50001, 902, flags="S"), tcp4(7777, 50030, GREETING),
                                               tcp4(50030, 7777, b"after")])
    for engine in ("python", "c"):
        sel = Selection()
        seen = []
        with CaptureReader(path, sel, engine=engine) as r:
            for p in r:
                seen.append((p.frame, 7777 in sel.tcp_ports))
        assert seen == [(1, False), (2, True), (3, True)], engine


def test_detect_greeting_off_and_odd_port_values(tmp_path):
    path = write(tmp_path / "o.pcap")
    assert_same(path, lambda: Selection(detect_greeting=False))
    assert_same(path, lambda: Selection(tcp_ports={902.0, True, "903", 10**9, -5}, udp_ports={53.0}))


def test_progress_and_large_file_windows(tmp_path, monkeypatch):
    """Many scanner windows over a mapped file: same packets, progress reaches the file size."""
    monkeypatch.setattr(engine, "MMAP_WINDOW", 4096)
    monkeypatch.setattr(engine, "FAST_BATCH", 3)
    path = tmp_path / "big.pcap"
    with CaptureWriter(str(path)) as w:
        for i in range(3000):
            w.write(TS0 + i * 0.001, ALL_PACKETS[i % len(ALL_PACKETS)])
    size = path.stat().st_size
    seen = []
    with CaptureReader(path, progress=seen.append, engine="c") as r:
        got = list(r)
    assert seen and seen[-1] == size and seen == sorted(seen) and len(seen) > 10
    with CaptureReader(path, engine="python") as r:
        assert list(r) == got


def test_file_growing_after_it_was_mapped(tmp_path):
    """What is appended to the file while it is read is read too, as the chunked reader does."""
    path = write(tmp_path / "grow.pcap", packets=PACKETS[:3])
    extra = write(tmp_path / "more.pcap", packets=PACKETS[3:]).read_bytes()[24:]
    with CaptureReader(path, engine="c") as r:
        it = iter(r)
        first = next(it)
        with open(path, "ab") as f:
            f.write(extra)
        rest = list(it)
    assert [p.frame for p in [first, *rest]] == [2, 3, 5, 6, 7, 8]


def test_early_close_releases_the_mapping(tmp_path):
    path = write(tmp_path / "close.pcap")
    r = CaptureReader(path, engine="c")
    it = iter(r)
    next(it)
    assert r._mm is not None
    r.close()
    assert r._mm is None
    it.close()


def test_read_packets_and_gzip_fileobj(tmp_path):
    path = tmp_path / "g.pcapng.gz"
    path.write_bytes(gzip.compress(write(tmp_path / "g.pcapng", fmt="pcapng").read_bytes()))
    assert_same(path, chunk_sizes=(40,))
    with pytest.raises(CaptureError):
        CaptureReader(tmp_path / "missing.pcap", engine="c")
