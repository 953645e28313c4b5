"""The whole pipeline on hostile input: random and half-valid bytes on port 902, in both
directions, with holes, mid-stream starts and truncated snapshots, never raise and never put
control characters on the terminal."""

import io
import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissect.port902.analysis import analyze
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.output.render import render_json, render_table

PREFIXES = [b"", b"220 VMware Authentication Daemon Version 1.10: SSL Required\r\n", b"\x16\x03\x01\x00\x30",
            b"\x17\x03\x03\x40\x00", b"USER root\r\n", b"\x01\x00\x00\x00", b"\x7a\xda\x00\xa1", b"RFB 003.008\n"]


def tcp(src, dst, sport, dport, seq, ack, flags, payload):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst)
    return ip + hdr + payload


segments = st.lists(
    st.tuples(st.booleans(), st.sampled_from(PREFIXES), st.binary(max_size=300), st.integers(0, 3)),
    min_size=1, max_size=25)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments, st.booleans(), st.integers(60, 400))
def test_random_streams_never_raise(tmp_path, segs, with_syn, snaplen):
    c, s = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    cseq, sseq = 1000, 5000
    pkts = []
    if with_syn:
        pkts += [tcp(c, s, 40000, 902, cseq - 1, 0, 0x02, b""), tcp(s, c, 902, 40000, sseq - 1, cseq, 0x12, b"")]
    for from_client, prefix, body, skip in segs:
        data = prefix + body
        if from_client:
            cseq += skip * 100  # a hole the size of a lost segment
            pkts.append(tcp(c, s, 40000, 902, cseq, sseq, 0x18, data))
            cseq += len(data)
        else:
            sseq += skip * 100
            pkts.append(tcp(s, c, 902, 40000, sseq, cseq, 0x18, data))
            sseq += len(data)
    path = tmp_path / "r.pcap"
    with CaptureWriter(str(path), snaplen=snaplen) as w:
        for i, p in enumerate(pkts):
            w.write(1.7e9 + i * 0.01, p)
    result = analyze(path)
    assert len(result.sessions) == 1
    out = io.StringIO()
    render_table(result, out)
    assert not any(ch in out.getvalue() for ch in "\x1b\x07\x9b")
    out = io.StringIO()
    render_json(result, out)
    json.loads(out.getvalue())
    result.sessions_frame(), result.tls_records_frame(), result.features_frame()
