"""Per-session lists are capped with a count of what was left out (issue 13): a flood of authd
lines, commands or TLS alerts in one connection does not grow memory, and nothing is lost
silently (the record's ``dropped`` says how many)."""

import struct

from dissect.port902.analysis import analyze
from dissect.port902.analyzers import session as sessmod
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.proto import authd

GREETING = b"220 VMware Authentication Daemon Version 1.10: ServerDaemonProtocol:SOAP\r\n"


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst) + hdr + payload


def one_session(path, client_chunks, server_first=GREETING):
    c, s = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    cseq, sseq = 1000, 5000
    pkts = [tcp(c, s, 40000, 902, cseq - 1, 0, 0x02), tcp(s, c, 902, 40000, sseq - 1, cseq, 0x12),
            tcp(s, c, 902, 40000, sseq, cseq, 0x18, server_first)]
    sseq += len(server_first)
    for chunk in client_chunks:
        pkts.append(tcp(c, s, 40000, 902, cseq, sseq, 0x18, chunk))
        cseq += len(chunk)
    with CaptureWriter(str(path)) as w:
        for i, p in enumerate(pkts):
            w.write(1.7e9 + i * 0.001, p)
    return path


def test_dialogue_lines_and_commands_are_capped(tmp_path):
    n = authd.MAX_LINES + 700
    lines = [b"NOOP\r\nUSER root\r\n" * 50 for _ in range(n // 100)]
    (rec,) = analyze(one_session(tmp_path / "lines.pcap", lines)).sessions
    assert len(rec.dialogue) == authd.MAX_LINES
    total = 1 + 100 * (n // 100)  # the greeting and every client line
    assert rec.dropped["dialogue"] == total - authd.MAX_LINES
    assert len(rec.commands) == authd.MAX_COMMANDS
    assert rec.to_dict()["dropped"]["dialogue"] == total - authd.MAX_LINES


def test_tls_alerts_are_capped(tmp_path):
    hello = (b"\x16\x03\x01\x00\x2d\x01\x00\x00\x29\x03\x03" + b"\x22" * 32 + b"\x00\x00\x02\xc0\x2f\x01\x00")
    alert = b"\x15\x03\x03\x00\x02\x01\x00"  # warning close_notify, in clear
    n = sessmod.MAX_ALERTS + 250
    chunks = [hello] + [alert * 50 for _ in range(n // 50)]
    (rec,) = analyze(one_session(tmp_path / "alerts.pcap", chunks)).sessions
    kept = sum(len(h.alerts) for h in rec.handshakes) + len(rec.midstream_alerts)
    assert kept == sessmod.MAX_ALERTS
    assert rec.dropped["alerts"] == 50 * (n // 50) - sessmod.MAX_ALERTS


def test_ordinary_session_has_no_dropped_key(tmp_path):
    (rec,) = analyze(one_session(tmp_path / "ok.pcap", [b"USER root\r\n"])).sessions
    assert rec.dropped is None and "dropped" not in rec.to_dict()


def test_published_handshakes_and_lines_are_frozen():
    """Records are frozen once a connection ends (issue 15): handshakes and lines included."""
    import dataclasses
    from pathlib import Path

    import pytest

    from dissect.port902.model.records import HandshakeRecord

    result = analyze(str(Path(__file__).resolve().parent.parent / "samples" / "esxi8-console.pcap"))
    handshakes = [h for s in result.sessions for h in s.handshakes]
    lines = [ln for s in result.sessions for ln in s.dialogue]
    assert handshakes and lines
    for h in handshakes:
        assert isinstance(h, HandshakeRecord)
        assert isinstance(h.certificates, tuple) and isinstance(h.alerts, tuple)
        with pytest.raises(dataclasses.FrozenInstanceError):
            h.client_app_records = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        lines[0].text = "changed"
    assert any(h.version for h in handshakes) and any(h.certificates for h in handshakes)
