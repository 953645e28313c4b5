"""TCP reassembly: order, retransmission, overlap, holes, wraparound, truncation."""

import random

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902.net.reassembly import Reassembler


class Sink:
    def __init__(self):
        self.out = bytearray()
        self.gaps = []

    def data(self, data, ts, frame):
        self.out += data

    def gap(self, n, ts, frame):
        self.gaps.append(n)
        self.out += b"?" * n


def make(isn=1000, **kw):
    sink = Sink()
    r = Reassembler(sink, **kw)
    r.syn(isn)
    return r, sink


def test_in_order():
    r, s = make()
    r.segment(1001, b"hello ", 6, 0, 1)
    r.segment(1007, b"world", 5, 0, 2)
    assert bytes(s.out) == b"hello world" and r.delivered == 11 and r.retransmissions == 0


def test_out_of_order_is_reordered():
    r, s = make()
    assert r.segment(1007, b"world", 5, 0, 2) == "O"
    r.segment(1001, b"hello ", 6, 0, 1)
    assert bytes(s.out) == b"hello world" and r.out_of_order == 1


def test_retransmission_counted_not_delivered_twice():
    r, s = make()
    r.segment(1001, b"abc", 3, 0, 1)
    assert r.segment(1001, b"abc", 3, 0, 2) == "T"
    assert bytes(s.out) == b"abc" and r.retransmissions == 1 and r.wire_bytes == 6


def test_partial_overlap_delivers_only_new_bytes():
    r, s = make()
    r.segment(1001, b"abcd", 4, 0, 1)
    r.segment(1003, b"cdef", 4, 0, 2)
    assert bytes(s.out) == b"abcdef" and r.overlaps == 1


def test_hole_reported_at_flush():
    r, s = make()
    r.segment(1001, b"ab", 2, 0, 1)
    r.segment(1010, b"xy", 2, 0, 2)
    r.flush()
    assert s.gaps == [7] and bytes(s.out) == b"ab" + b"?" * 7 + b"xy"
    assert r.gap_bytes == 7


def test_pending_cap_declares_gap_without_waiting():
    r, s = make(max_pending=10)
    r.segment(1001, b"a", 1, 0, 1)
    r.segment(1100, b"x" * 8, 8, 0, 2)
    r.segment(1108, b"y" * 8, 8, 0, 3)  # pending now 16 > 10
    assert s.gaps == [98]
    assert bytes(s.out).endswith(b"x" * 8 + b"y" * 8)


def test_snaplen_truncated_segment_becomes_gap():
    r, s = make()
    r.segment(1001, b"abc", 10, 0, 1)
    r.segment(1011, b"z", 1, 0, 2)
    assert s.gaps == [7] and r.truncated_bytes == 7 and bytes(s.out) == b"abc" + b"?" * 7 + b"z"


def test_sequence_wraparound():
    r, s = make(isn=0xFFFFFFF0)
    r.segment(0xFFFFFFF1, b"A" * 20, 20, 0, 1)  # crosses 2**32
    r.segment((0xFFFFFFF1 + 20) % (1 << 32), b"B" * 5, 5, 0, 2)
    assert bytes(s.out) == b"A" * 20 + b"B" * 5


def test_midstream_start_without_syn():
    sink = Sink()
    r = Reassembler(sink)
    r.segment(555, b"xyz", 3, 0, 1)
    r.segment(558, b"!", 1, 0, 2)
    assert bytes(sink.out) == b"xyz!"


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(0, 2**32 - 1), st.randoms(use_true_random=False),
       st.integers(1, 200))
def test_any_segmentation_order_and_duplication_gives_the_stream(data, isn, rnd, mss):
    segs = [(i, data[i:i + mss]) for i in range(0, len(data), mss)]
    dup = segs + [rnd.choice(segs) for _ in range(len(segs) // 3)]
    rnd.shuffle(dup)
    r, s = make(isn=isn)
    for off, chunk in dup:
        r.segment((isn + 1 + off) % (1 << 32), chunk, len(chunk), 0.0, 0)
    r.flush()
    assert bytes(s.out) == data
    assert s.gaps == []


OVERLAP_CASES = {  # (stream offset, data) in arrival order; conflicting copies of the same bytes
    "lower_start_wins": [(10, b"A" * 10), (15, b"B" * 10), (0, b"C" * 10)],
    "lower_start_beats_one_at_the_frontier": [(15, b"A" * 10), (20, b"D" * 10), (0, b"S" * 20)],
    "same_start_first_wins_longer_adds_its_tail": [(10, b"A" * 5), (10, b"L" * 10), (0, b"C" * 10)],
    "same_start_same_length_first_wins": [(10, b"A" * 10), (10, b"E" * 10), (0, b"C" * 10)],
    "a_later_lower_start_covers_it": [(12, b"A" * 4), (10, b"W" * 12), (0, b"C" * 10)],
    "delivered_bytes_stay": [(0, b"C" * 10), (5, b"X" * 10), (30, b"Q" * 5), (12, b"Y" * 20)],
}


@pytest.mark.tshark
@pytest.mark.parametrize("name", list(OVERLAP_CASES))
def test_overlapping_copies_are_resolved_as_tshark_does(tmp_path, name):
    """Which copy of overlapping bytes wins is tshark's answer (follow,tcp, out-of-order on)."""
    import struct
    import subprocess

    from dissect.port902.lab.pcapwriter import CaptureWriter

    def tcp(seq, flags, payload=b"", ack=5001, back=False):
        ports, hosts = (40000, 902), (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        if back:
            ports, hosts = ports[::-1], hosts[::-1]
        hdr = struct.pack("!HHIIBBHHH", *ports, seq, ack, 0x50, flags, 65535, 0, 0)
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, *hosts) + hdr + payload

    segs = OVERLAP_CASES[name]
    path = tmp_path / f"{name}.pcap"
    with CaptureWriter(str(path)) as w:
        w.write(1.7e9, tcp(999, 0x02, ack=0))
        w.write(1.7e9, tcp(5000, 0x12, ack=1000, back=True))
        w.write(1.7e9, tcp(1000, 0x10))
        for i, (off, data) in enumerate(segs):
            w.write(1.7e9 + 0.001 * (i + 1), tcp(1000 + off, 0x18, data))
    out = subprocess.run(["tshark", "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE",
                          "-q", "-z", "follow,tcp,raw,0"], capture_output=True, text=True, check=True).stdout
    expected = bytes.fromhex("".join(ln.strip() for ln in out.splitlines()  # the hex lines
                                     if ln.strip() and all(c in "0123456789abcdef" for c in ln.strip())))
    r, s = make(isn=999)
    for off, data in segs:
        r.segment(1000 + off, data, len(data), 0, 0)
    r.flush()
    assert expected and bytes(s.out) == expected, (bytes(s.out), expected)
