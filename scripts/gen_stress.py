#!/usr/bin/env python3
"""Write hostile-load captures for the per-connection cost measurements (issue 13).

    gen_stress.py KIND OUT.pcap -n N [--seed S]

KIND is one of

* ``synflood``   N bare SYNs to port 902 from N distinct (address, port) pairs, no answer;
* ``short``      N short complete authd sessions, one after the other: handshake, the
                 greeting, a TLS ClientHello / ServerHello-shaped exchange, a few
                 application-data records each way, FIN close;
* ``concurrent`` N connections opened (handshake and greeting) before any of them closes,
                 then each sends one record and all are closed;
* ``handoff``    N classic-ESX 903 sessions of one client, each followed 0.5 s later by a
                 902 session from the same client (and N unrelated 902 sessions of the
                 same client in between), for the 903 -> 902 pairing;
* ``outoforder`` one TLS authd session whose client then sends 2N application-data records,
                 one per segment, of which the capture has only every other one (N holes
                 that never fill), in reversed blocks of 16, every 8th captured segment
                 sent again stretched over half of the next hole (overlapping pending
                 data): out-of-order segments for TCP reassembly.

Classic pcap, Ethernet, microsecond timestamps, zero checksums; written in one pass with
``struct`` so a million connections take seconds.  The ground truth (connections written,
packets) is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
BANNER = (b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
          b"MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported/t\r\n")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
REC = struct.Struct("<IIII")
ETH = bytes.fromhex("005056000001" "02aa00000001" "0800")
IPH = struct.Struct("!BBHHHBBH4s4s")
TCPH = struct.Struct("!HHIIBBHHH")


def client_hello(rng: random.Random) -> bytes:
    """A well-formed TLS 1.2 ClientHello record (SNI-less, a few suites and extensions)."""
    suites = struct.pack("!6H", 0xC02F, 0xC030, 0xC02B, 0xC02C, 0x009E, 0x00FF)
    ext = struct.pack("!HHH", 0x000A, 4, 2) + struct.pack("!H", 0x0017)  # supported_groups
    ext += struct.pack("!HHB", 0x000B, 2, 1) + b"\x00"  # ec_point_formats
    body = struct.pack("!H", 0x0303) + rng.randbytes(32) + b"\x00" + struct.pack("!H", len(suites)) + suites
    body += b"\x01\x00" + struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def server_hello(rng: random.Random) -> bytes:
    body = struct.pack("!H", 0x0303) + rng.randbytes(32) + b"\x00" + struct.pack("!HB", 0xC02F, 0)
    body += struct.pack("!H", 0)
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    done = b"\x0e\x00\x00\x00"
    rec = b"\x16\x03\x03" + struct.pack("!H", len(hs) + len(done)) + hs + done
    return rec + b"\x14\x03\x03\x00\x01\x01"


def app(rng: random.Random, n: int) -> bytes:
    return b"\x17\x03\x03" + struct.pack("!H", n) + rng.randbytes(n)


class Writer:
    def __init__(self, path: str) -> None:
        self.fh = open(path, "wb")
        self.fh.write(PCAP_HEADER)
        self.buf: list[bytes] = []
        self.packets = 0
        self.t = 1_700_000_000_000_000

    def tcp(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
            payload: bytes = b"", dt_us: int = 50) -> None:
        self.t += dt_us
        tcp = TCPH.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 64240, 0, 0)
        ip = IPH.pack(0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
        frame = ETH + ip + tcp + payload
        sec, usec = divmod(self.t, 1_000_000)
        self.buf.append(REC.pack(sec, usec, len(frame), len(frame)))
        self.buf.append(frame)
        self.packets += 1
        if len(self.buf) >= 65536:
            self.fh.write(b"".join(self.buf))
            self.buf.clear()

    def close(self) -> int:
        self.fh.write(b"".join(self.buf))
        size = self.fh.tell()
        self.fh.close()
        return size


def ip4(k: int) -> bytes:
    return bytes([10, (k >> 16) & 255, (k >> 8) & 255, k & 255 or 1])


class Conn:
    """One TCP connection's sequence numbers; ``send`` writes a data segment and its ACK."""

    def __init__(self, w: Writer, cip: bytes, sip: bytes, cport: int, sport: int, rng: random.Random) -> None:
        self.w, self.cip, self.sip, self.cport, self.sport = w, cip, sip, cport, sport
        self.cseq, self.sseq = rng.getrandbits(32), rng.getrandbits(32)

    def open(self) -> None:
        w = self.w
        w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, 0, SYN)
        w.tcp(self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq + 1, SYN | ACK)
        self.cseq += 1
        self.sseq += 1
        w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, ACK)

    def send(self, from_client: bool, data: bytes) -> None:
        w = self.w
        if from_client:
            w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, ACK | PSH, data)
            self.cseq += len(data)
            w.tcp(self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq, ACK)
        else:
            w.tcp(self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq, ACK | PSH, data)
            self.sseq += len(data)
            w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, ACK)

    def close(self) -> None:
        w = self.w
        w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, FIN | ACK)
        self.cseq += 1
        w.tcp(self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq, FIN | ACK)
        self.sseq += 1
        w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, ACK)


def generate(kind: str, out: str, n: int, seed: int = 13) -> dict:
    rng = random.Random(seed)
    w = Writer(out)
    server = bytes([10, 250, 0, 2])
    ch, sh = client_hello(rng), server_hello(rng)
    if kind == "synflood":
        for k in range(n):
            cip = ip4(k // 20000 + 1 + (1 << 16))
            w.tcp(cip, server, 1024 + k % 20000, 902, rng.getrandbits(32), 0, SYN, dt_us=5)
    elif kind == "short":
        for k in range(n):
            c = Conn(w, ip4(1 + k % 5000 + (2 << 16)), server, 30000 + (k // 5000) % 30000, 902, rng)
            c.open()
            c.send(False, BANNER)
            c.send(True, ch)
            c.send(False, sh)
            for size in (29 + k % 40, 60, 33):
                c.send(True, app(rng, size))
                c.send(False, app(rng, size + 20))
            c.close()
    elif kind == "concurrent":
        conns = [Conn(w, ip4(1 + k % 5000 + (3 << 16)), server, 20000 + k // 5000, 902, rng) for k in range(n)]
        for c in conns:
            c.open()
            c.send(False, BANNER)
        for c in conns:
            c.send(True, ch)
        for c in conns:
            c.close()
    elif kind == "handoff":
        client, control = bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2])
        port = 1024
        for k in range(n):
            for sip, sport in ((control, 903), (server, 902), (server, 902)):
                port = port + 1 if port < 65000 else 1024
                c = Conn(w, client, sip, port, sport, rng)
                c.open()
                c.send(False, BANNER)
                c.close()
                w.t += 500_000
    elif kind == "outoforder":
        c = Conn(w, ip4(1 + (4 << 16)), server, 40000, 902, rng)
        c.open()
        c.send(False, BANNER)
        c.send(True, ch)
        c.send(False, sh)
        recs = [app(rng, 100) for _ in range(2 * n)]
        starts, off = [], c.cseq
        for r in recs:
            starts.append(off)
            off += len(r)
        stream = b"".join(recs)
        base = c.cseq

        def seg(k: int, extra: int = 0) -> None:
            a = starts[k] - base
            data = stream[a:a + len(recs[k]) + extra]
            w.tcp(c.cip, c.sip, c.cport, c.sport, starts[k], c.sseq, ACK | PSH, data, dt_us=20)

        captured = list(range(1, 2 * n, 2))  # the capture missed every other segment
        for block in range(0, n, 16):
            for k in reversed(captured[block:block + 16]):
                seg(k)
                if k % 16 == 1:
                    seg(k, len(recs[k]) // 2)  # resent longer: overlaps the next pending one
        c.cseq = off
        w.tcp(c.sip, c.cip, c.sport, c.cport, c.sseq, c.cseq, ACK)
        c.close()
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    size = w.close()
    return {"kind": kind, "path": out, "connections": 1 if kind == "outoforder" else n * (3 if kind == "handoff" else 1),
            "packets": w.packets, "file_size": size}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("synflood", "short", "concurrent", "handoff", "outoforder"))
    ap.add_argument("out")
    ap.add_argument("-n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)
    print(json.dumps(generate(args.kind, args.out, args.n, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
