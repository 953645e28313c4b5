"""Content detection attaches to the connection's server endpoint, never to a port (issue 13):
one spoofed authd greeting from :443 must not turn every HTTPS connection into an authd session
nor hide them from the console-path checks."""

import struct

from dissect.port902.analysis import analyze
from dissect.port902.lab.pcapwriter import CaptureWriter

GREETING = b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP\r\n"
HELLO = b"\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03" + b"\x11" * 32 + b"\x00\x00\x00\x00"


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst)
    return ip + hdr + payload


def https(k):
    c, s = bytes([10, 1, k // 250, k % 250 + 1]), bytes([10, 2, k // 250, k % 250 + 1])
    cp = 40000 + k
    return [tcp(c, s, cp, 443, 100, 0, 0x02), tcp(s, c, 443, cp, 500, 101, 0x12), tcp(c, s, cp, 443, 101, 501, 0x10),
            tcp(c, s, cp, 443, 101, 501, 0x18, HELLO), tcp(s, c, 443, cp, 501, 101 + len(HELLO), 0x18, b"\x17" * 300),
            tcp(c, s, cp, 443, 101 + len(HELLO), 801, 0x11), tcp(s, c, 443, cp, 801, 102 + len(HELLO), 0x11)]


def capture(path, spoof):
    pkts = []
    spoofer, victim = bytes([10, 9, 9, 9]), bytes([10, 8, 8, 8])
    for k in range(101):
        if k == 1 and spoof:
            pkts.append(tcp(spoofer, victim, 443, 55555, 1, 1, 0x18, GREETING))
            pkts.append(tcp(victim, spoofer, 55555, 443, 1, 1 + len(GREETING), 0x18, b"USER root\r\n"))
        pkts += https(k)
    with CaptureWriter(str(path)) as w:
        for i, p in enumerate(pkts):
            w.write(1.7e9 + i * 0.001, p)
    return path


def https_paths(result):
    return sorted((c["client"], c["server"]) for c in result.to_dict()["diagnostics"]["console_paths"]
                  if "10.9.9.9" not in c["server"])


def test_spoofed_greeting_relabels_only_its_own_endpoint(tmp_path):
    clean = analyze(capture(tmp_path / "clean.pcap", spoof=False))
    spoofed = analyze(capture(tmp_path / "spoofed.pcap", spoof=True))
    assert clean.sessions == []
    assert [(s.server_ip, s.server_port) for s in spoofed.sessions] == [("10.9.9.9", 443)]
    assert spoofed.sessions[0].banner is not None
    rows = [w for w in spoofed.weird if w.kind == "authd_on_unusual_port"]
    assert len(rows) == 1 and "10.9.9.9:443" in rows[0].detail and rows[0].frame is not None
    # every HTTPS connection stays visible to the console-path checks, exactly as without the spoof
    assert https_paths(spoofed) == https_paths(clean)


def test_caller_selection_is_not_changed(tmp_path):
    from dissect.port902.io.capture import Selection

    sel = Selection()
    before = set(sel.tcp_ports)
    analyze(capture(tmp_path / "s.pcap", spoof=True), selection=sel)
    assert sel.tcp_ports == before
