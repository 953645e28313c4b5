"""TCP reassembly: order, retransmission, overlap, holes, wraparound, truncation."""

import random

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
