"""Finding TLS record boundaries in a stream picked up mid-way, holes included."""

import random

from dissect.port902.analyzers.midstream import MidstreamSync, find_record_chain


def records(*lengths):
    return b"".join(bytes([23, 3, 3, n >> 8, n & 255]) + bytes([0x5A]) * n for n in lengths)


def test_chain_found_after_a_partial_record():
    data = b"\x99" * 11 + records(300, 40, 1200, 20)
    assert find_record_chain(data) == 11
    sync = MidstreamSync()
    sync.data(data, 0.0, 1)
    assert sync.find() == 11


def test_chain_across_a_hole_when_headers_are_captured():
    """Snapshot length keeps each segment's first bytes: headers at segment starts survive."""
    recs = [records(n) for n in (1400, 1400, 1400, 1400)]
    sync = MidstreamSync()
    sync.data(b"\x01\x02\x03", 0.0, 1)  # the tail of a record from before the capture
    for rec in recs:
        sync.data(rec[:40], 0.0, 2)  # 40 captured bytes of each 1405-byte segment
        sync.gap(len(rec) - 40)
    assert sync.find() == 3


def test_chain_waits_for_more_data_then_completes():
    data = records(5000, 30, 30)
    sync = MidstreamSync()
    sync.data(data[:3000], 0.0, 1)
    assert sync.find() is None and sync.retry  # the first link runs past what arrived
    sync.data(data[3000:], 0.0, 2)
    assert sync.find() == 0


def test_random_bytes_do_not_sync_and_fill_the_window():
    rnd = random.Random(5)
    sync = MidstreamSync()
    while not sync.full:
        sync.data(bytes(rnd.getrandbits(8) for _ in range(1460)), 0.0, 1)
        assert sync.find() is None
