"""A capture that shrinks while it is read (rewritten, truncated, a tool restarting on the same
name) must never kill the reader with SIGBUS through its memory map: it is read to its current
end, with a ``truncated_file`` warning, in both engines, pcap and pcapng.

Deterministic: the file is truncated from inside the loop over the reader's packets, after the C
scanner mapped it and went past the new end (the window is 32 MiB; the file holds 48 MiB of
uninteresting UDP between a port-902 SYN at the start and more at the end).  Each case runs in a
child interpreter, so a SIGBUS fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap

import pytest

FILLER_BYTES = 48 << 20


def _eth_ipv4(proto: int, l4: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, bytes([10, 0, 0, 1]),
                     bytes([10, 0, 0, 2]))
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + l4


def _syn(sport: int) -> bytes:
    return _eth_ipv4(6, struct.pack("!HHIIBBHHH", sport, 902, 1000, 0, 0x50, 0x02, 65535, 0, 0))


def _udp(i: int) -> bytes:
    return _eth_ipv4(17, struct.pack("!HHHH", 40000, 5000, 8 + 1400, 0) + bytes(1400))


def _packets() -> list[bytes]:
    filler = FILLER_BYTES // 1460
    return [_syn(50000)] + [_udp(i) for i in range(filler)] + [_syn(50001 + i) for i in range(100)]


def _write_pcap(path, pkts) -> None:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(pkts):
            fh.write(struct.pack("<IIII", 1_700_000_000 + i // 1000, i % 1000, len(p), len(p)) + p)


def _write_pcapng(path, pkts) -> None:
    def block(btype: int, body: bytes) -> bytes:
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    with open(path, "wb") as fh:
        fh.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        fh.write(block(1, struct.pack("<HHI", 1, 0, 65535)))
        for i, p in enumerate(pkts):
            pad = b"\x00" * (-len(p) % 4)
            ts = (1_700_000_000 + i // 1000) * 1_000_000 + i % 1000
            fh.write(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(p), len(p)) + p + pad))


CHILD = textwrap.dedent("""
    import json, os, sys
    from dissect.port902.io.capture import CaptureReader
    path, engine, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
    frames = []
    with CaptureReader(path, engine=engine) as reader:
        for pkt in reader:
            frames.append(pkt.frame)
            if len(frames) == 1:
                os.truncate(path, keep)  # under the map, behind the scanner's position
        stats = reader.stats
    print(json.dumps({"frames": frames, "packets": stats.packets,
                      "warnings": [(w.kind, w.offset, w.detail) for w in stats.warnings]}))
""")


@pytest.mark.parametrize("engine", ["c", "python"])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_a_file_truncated_while_read_is_read_to_its_end(tmp_path, engine, fmt):
    path = tmp_path / f"shrinking.{fmt}"
    (_write_pcap if fmt == "pcap" else _write_pcapng)(path, _packets())
    keep = 16 << 20  # the scanner's first window went on to 32 MiB before the first packet came out
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), engine, str(keep)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"child died (signal {-done.returncode})" if done.returncode < 0 else done.stderr
    got = json.loads(done.stdout)
    assert got["frames"][0] == 1  # the first SYN; the ones after the filler were cut away
    kinds = [w[0] for w in got["warnings"]]
    assert kinds == ["truncated_file"], got["warnings"]
    # what was read before the cut is kept (the C engine had scanned to 32 MiB), nothing after it
    assert 0 < got["packets"] <= (32 << 20) // 1450 < len(_packets())
    assert got["frames"] == [1]
    if engine == "c":
        assert f"shrank to {keep} bytes" in got["warnings"][0][2]


@pytest.mark.parametrize("engine", ["c", "python"])
@pytest.mark.parametrize("grows", [True, False])
def test_a_file_still_being_written_is_read_to_its_current_end(tmp_path, engine, grows):
    """A capture tool still writing: the file ends inside a record when the reader opens it.  What
    is appended while the reader runs is read too (the map covers the size at open, the rest is
    read as it comes); when nothing more comes, the cut record is a truncated_file warning."""
    from dissect.port902.io.capture import CaptureReader

    full = tmp_path / "full.pcap"
    _write_pcap(full, _packets())
    data = full.read_bytes()
    cut = len(data) // 2 + 7  # inside a record
    path = tmp_path / "growing.pcap"
    path.write_bytes(data[:cut])
    frames = []
    with CaptureReader(path, engine=engine) as reader:
        for pkt in reader:
            frames.append(pkt.frame)
            if grows and len(frames) == 1:
                with open(path, "ab") as fh:
                    fh.write(data[cut:])
        stats = reader.stats
    with CaptureReader(full, engine=engine) as ref:
        want = [p.frame for p in ref]
        total = ref.stats.packets
    if grows:
        assert frames == want and stats.packets == total and not stats.warnings
    else:
        assert frames == [1] and 0 < stats.packets < total
        assert [w.kind for w in stats.warnings] == ["truncated_file"]
        assert "ends inside a record" in stats.warnings[0].detail
