#!/usr/bin/env python3
"""Write a large, realistic-looking pcap for the dissect902 throughput benchmark.

    gen_bulk_capture.py OUT.pcap --packets N [--authd-share 0.03] [--seed S]
                        [--pps 5000] [--conn-every 2000] [--long-sessions 4] [--manifest M.json]

What is in the file (classic pcap, Ethernet, microsecond timestamps; TCP and IPv4 header
checksums zero as with checksum offload, UDP checksums computed). Frames, certificates, TLS and
the pcap writer are the traffic lab's (``dissect.port902.lab``: ``bulk`` frame templates,
``certs.default_certificate``, ``tlsbio.TlsPair``, ``pcapwriter.CaptureWriter``):

* background (about 97 %): a few hundred concurrent TCP flows on 443 (TLS-record-shaped
  segments), 445 (NBSS + SMB2 READ-shaped segments), 22 (opaque) and 80 (HTTP text), each
  with handshake, consistent seq/ack, pure ACKs and FIN (or RST) close, replaced by new
  flows as they end; plus DNS query/response pairs on UDP 53.  Mostly IPv4; about 8 % of
  flows are IPv6 and about 10 % carry an 802.1Q tag.
* port 902 (``--authd-share``, default 3 %): vmware-authd connections as an ESXi host
  serves them: SYN / SYN-ACK / ACK, the plaintext ``220 VMware Authentication Daemon``
  banner, a real TLS handshake (TLS 1.2 or 1.3, captured once per host at start-up from
  Python's ``ssl`` over memory BIOs with a fresh "VMware ESX Server Default Certificate"-style
  certificate per host, then replayed), application-data records in both directions segmented at MSS 1448 with
  correct seq/ack, and FIN close.  A few long console-like sessions run through the whole
  capture; one new short connection starts every ``--conn-every`` packets (so the number
  of distinct 902 connections grows with the capture); about 10 % of the new connections
  are unanswered SYNs (with two retransmissions), 3 % are refused (RST) and 5 % of the
  established ones end with a client RST instead of FIN.

The ground truth (sessions per state, banners, TLS versions, packet counts, number of TCP
conversations) is printed as JSON on stdout and written to ``--manifest`` when given.
Everything is derived from ``--seed`` except the TLS handshake bytes and certificates,
which are fresh on every run (the counts do not depend on them).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import ipaddress
import json
import os
import random
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import dissect.port902.lab  # noqa: F401
except ModuleNotFoundError:              # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dissect.port902.lab.bulk import SYN_OPTS, tcp_frame, udp_frame  # noqa: E402
from dissect.port902.lab.bulk import tcp_path as make_path  # noqa: E402
from dissect.port902.lab.certs import HostCert, default_certificate  # noqa: E402
from dissect.port902.lab.pcapwriter import CaptureWriter  # noqa: E402
from dissect.port902.lab.tcp import ACK, FIN, PSH, RST, SYN  # noqa: E402
from dissect.port902.lab.tlsbio import TlsPair  # noqa: E402

BANNER = (
    b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
    b"MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported/t, SHA256 supported\r\n"
)
MSS = 1448
C2S, S2C = 0, 1
EPHEMERAL_LO, EPHEMERAL_HI = 32768, 60999
ROUTER_MAC = bytes.fromhex("00005e000101")
ESXI_MAC = bytes.fromhex("005056000000")  # VMware OUI


# --------------------------------------------------------------------------- TLS, captured once

def host_certificate(host: str) -> HostCert:
    """A fresh ESXi-default-style certificate for ``host`` (an OpenSSL-generated key: fast, and
    nothing in the manifest depends on it)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509 import random_serial_number

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return default_certificate(host, key, random_serial_number(), _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc))


def capture_handshake(cert: HostCert, tls13: bool) -> list[tuple[int, bytes]]:
    """A real TLS handshake between two SSLObjects over memory BIOs (``tlsbio.TlsPair``), as
    (direction, bytes) flights, plus one application-data exchange (an authd USER line and the
    331 reply), exactly as the bytes would appear on the wire."""
    if tls13:
        pair = TlsPair(cert, "1.3")
    else:
        pair = TlsPair(cert, "1.2", ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
    flights: list[tuple[int, bytes]] = []
    wire = [(C2S if side == "C" else S2C, data) for side, data in pair.handshake()]
    wire += [(C2S, pair.client_write(b"USER root\r\n")), (S2C, pair.server_write(b"331 Password required for root.\r\n"))]
    for d, data in wire:
        if flights and flights[-1][0] == d:
            flights[-1] = (d, flights[-1][1] + data)
        else:
            flights.append((d, data))
    return flights


# --------------------------------------------------------------------------- port-902 connections

class Conn:
    """One port-902 TCP connection; ``gen`` yields frames (bytes) or sleeps (int, µs)."""

    __slots__ = ("path", "seq", "gen", "ready", "stop", "kind")

    def __init__(self, path: tuple, cisn: int, sisn: int, kind: str) -> None:
        self.path = path
        self.seq = [cisn, sisn]
        self.gen = None
        self.ready = 0
        self.stop = False
        self.kind = kind

    def pkt(self, d: int, flags: int, payload: bytes = b"", opts: bytes = b"") -> bytes:
        s = self.seq
        seq = s[d]
        ack = s[1 - d] if flags & ACK else 0
        fr = tcp_frame(self.path, d, seq, ack, ((5 + len(opts) // 4) << 12) | flags, opts + payload)
        s[d] = seq + len(payload) + (1 if flags & (SYN | FIN) else 0)
        return fr

    def send(self, d: int, data: bytes):
        """Segment ``data`` at the MSS; the receiver ACKs every second segment and the last."""
        n = len(data)
        off = 0
        k = 0
        while off < n:
            chunk = data[off:off + MSS]
            off += len(chunk)
            last = off >= n
            yield self.pkt(d, ACK | PSH if last else ACK, chunk)
            k += 1
            if last or not k & 1:
                yield 150
                yield self.pkt(1 - d, ACK)


class Authd:
    """Everything needed to script port-902 connections."""

    def __init__(self, rng: random.Random, noise: bytes) -> None:
        self.rng = rng
        self.noise = noise

    def records(self, sizes) -> bytes:
        """TLS application-data records (opaque bodies) of the given ciphertext sizes."""
        noise, rnd = self.noise, self.rng.random
        span = len(noise) - 16500
        out = []
        for n in sizes:
            o = int(rnd() * span)
            out.append(b"\x17\x03\x03" + n.to_bytes(2, "big") + noise[o:o + n])
        return b"".join(out)

    def prelude(self, c: Conn, flights: list):
        r = self.rng
        yield c.pkt(C2S, SYN, opts=SYN_OPTS)
        yield 200 + int(r.random() * 800)
        yield c.pkt(S2C, SYN | ACK, opts=SYN_OPTS)
        yield 200 + int(r.random() * 800)
        yield c.pkt(C2S, ACK)
        yield 1000 + int(r.random() * 3000)
        yield from c.send(S2C, BANNER)
        yield 500 + int(r.random() * 2000)
        for d, data in flights:
            yield from c.send(d, data)
            yield 500 + int(r.random() * 3000)

    def close(self, c: Conn, rst: bool = False):
        if rst:
            yield c.pkt(C2S, RST | ACK)
            return
        yield c.pkt(C2S, FIN | ACK)
        yield 300
        yield c.pkt(S2C, FIN | ACK)
        yield 300
        yield c.pkt(C2S, ACK)

    def short(self, c: Conn, flights: list, rst: bool, bulk: bool):
        """A control / NFC-like connection: handshake, a few exchanges, maybe a bulk transfer."""
        r = self.rng
        yield from self.prelude(c, flights)
        for _ in range(1 + int(r.random() * 4)):
            yield from c.send(C2S, self.records([29 + int(r.random() * 120)]))
            yield 2000 + int(r.random() * 20000)
            yield from c.send(S2C, self.records([29 + int(r.random() * 300)]))
            yield 20000 + int(r.random() * 300000)
        if bulk:  # an NFC-over-TLS-like transfer, server to client
            for _ in range(2 + int(r.random() * 10)):
                yield from c.send(S2C, self.records([16408] * (1 + int(r.random() * 3))))
                yield 2000
        yield from self.close(c, rst)

    def console(self, c: Conn, flights: list):
        """A long MKS-console-like session: input events up, screen updates down, until stopped."""
        r = self.rng
        yield from self.prelude(c, flights)
        while not c.stop:
            yield from c.send(C2S, self.records([29 + int(r.random() * 80) for _ in range(1 + int(r.random() * 3))]))
            yield 5000 + int(r.random() * 50000)
            x = r.random()
            if x < 0.6:
                sizes = [40 + int(r.random() * 400)]
            elif x < 0.9:
                sizes = [400 + int(r.random() * 4000) for _ in range(1 + int(r.random() * 3))]
            else:
                sizes = [16408] * (1 + int(r.random() * 4))
            yield from c.send(S2C, self.records(sizes))
            yield 10000 + int(r.random() * 300000)
        yield from self.close(c)

    def unanswered(self, c: Conn):
        syn = c.pkt(C2S, SYN, opts=SYN_OPTS)
        yield syn
        yield 1_000_000
        yield syn  # retransmission: same sequence number
        yield 2_000_000
        yield syn

    def refused(self, c: Conn):
        c.seq[S2C] = 0
        yield c.pkt(C2S, SYN, opts=SYN_OPTS)
        yield 300
        yield c.pkt(S2C, RST | ACK)


# --------------------------------------------------------------------------- background

SERVICES = (  # port, share of flows, P(data packet is server->client), P(client data)
    (443, 0.55, 0.62, 0.12),
    (445, 0.13, 0.55, 0.15),
    (22, 0.12, 0.45, 0.35),
    (80, 0.20, 0.60, 0.08),
)


def _v4(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


def _v6(s: str) -> bytes:
    return ipaddress.IPv6Address(s).packed


def generate(out: str, packets: int, share: float = 0.03, seed: int = 902, pps: float = 5000.0,
             conn_every: int = 2000, long_sessions: int = 4, quiet: bool = False) -> dict:
    started = time.perf_counter()
    rng = random.Random(seed)
    rand = rng.random
    noise = rng.randbytes(1 << 17)
    text = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
            b"incididunt ut labore et dolore magna aliqua. ") * 1100
    span = len(noise) - 2000

    # -- hosts and TLS ------------------------------------------------------------------
    esxi_v4 = [_v4(f"10.10.0.{11 + k}") for k in range(4)]
    esxi_v6 = [_v6(f"2001:db8:a::{11 + k}") for k in range(4)]
    esxi_vlan = [0, 0, 100, 100]
    flights: dict[int, dict[str, list]] = {}
    for k in range(4):
        cert = host_certificate(f"esxi-{k + 1:02d}.lab.local")
        flights[k] = {"TLS 1.2": capture_handshake(cert, False), "TLS 1.3": capture_handshake(cert, True)}
    authd = Authd(rng, noise)

    # -- address pools --------------------------------------------------------------------
    clients_v4 = [_v4(f"10.0.{k >> 8}.{(k & 255) or 254}") for k in range(1, 3001)]
    clients_v6 = [_v6(f"2001:db8:1::{k:x}") for k in range(1, 301)]
    client_macs = [bytes.fromhex(f"02aa00{k:06x}") for k in range(256)]
    ext_v4 = [_v4(f"198.51.100.{k}") for k in range(1, 200)] + [_v4(f"203.0.113.{k}") for k in range(1, 200)]
    int_v4 = [_v4(f"10.1.{k >> 8}.{k & 255 or 1}") for k in range(10, 60)]
    srv_v6 = [_v6(f"2001:db8:ff::{k:x}") for k in range(1, 100)]
    dns_v4, dns_v6 = _v4("10.0.0.53"), _v6("2001:db8:1::53")
    dns_names = [b"".join(bytes([len(p)]) + p for p in n.split(b".")) + b"\0" for n in (
        b"www.example.com", b"vcenter.lab.local", b"esxi-01.lab.local", b"updates.example.net",
        b"time.example.org", b"login.example.com", b"cdn.example.net", b"fileserver.lab.local",
        b"mail.example.com", b"api.example.org", b"ntp.lab.local", b"backup.lab.local")]
    vc_v4 = _v4("10.10.0.5")
    admins_v4 = [_v4(f"10.20.0.{k}") for k in range(10, 40)]
    admins_v6 = [_v6(f"2001:db8:902::{k:x}") for k in range(10, 20)]
    next_port: dict[bytes, int] = {}

    def eport(ip: bytes) -> int:
        p = next_port.get(ip)
        if p is None:
            p = EPHEMERAL_LO + int(rand() * 20000)
        p = p + 1 if p < EPHEMERAL_HI else EPHEMERAL_LO
        next_port[ip] = p
        return p

    # -- background TCP flows: [path, cseq, sseq, step, remaining, svc, ...] --------------
    svc_cum = []
    acc = 0.0
    for port, frac, ps, pc in SERVICES:
        acc += frac
        svc_cum.append((acc, port, ps, ps + pc))
    tls_hdr = [b"\x17\x03\x03" + max(0, n - 5).to_bytes(2, "big") for n in range(MSS + 1)]
    smb_tmpl = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ16s", 64, 1, 0, 8, 1, 1, 0, 0, 0, 1, 0x1000000042, b"")
    http_cache: dict[int, bytes] = {}
    http_req = (b"GET /static/app.js HTTP/1.1\r\nHost: cdn.example.net\r\nUser-Agent: curl/8.4\r\n"
                b"Accept: */*\r\n\r\n")
    stats = {"tcp_flows": 0, "dns_queries": 0, "dns_responses": 0, "ipv6_flows": 0, "vlan_flows": 0}

    def new_flow() -> list:
        x = rand()
        for cum, port, ps, pcd in svc_cum:
            if x < cum:
                break
        v6 = rand() < 0.08
        vlan = (10, 20, 30)[int(rand() * 3)] if rand() < 0.10 else 0
        if v6:
            cip = clients_v6[int(rand() * len(clients_v6))]
            sip = srv_v6[int(rand() * len(srv_v6))]
        else:
            cip = clients_v4[int(rand() * len(clients_v4))]
            sip = (int_v4 if port in (445, 22) else ext_v4)[int(rand() * (50 if port in (445, 22) else 398))]
        cmac = client_macs[cip[-1]]
        path = make_path(cip, sip, eport(cip), port, cmac, ROUTER_MAC, vlan)
        y = rand()
        if y < 0.6:
            remaining = 4 + int(rand() * 26)
        elif y < 0.92:
            remaining = 30 + int(rand() * 270)
        else:
            remaining = 300 + int(rand() * 2700)
        return [path, rng.getrandbits(32), rng.getrandbits(32), 0, remaining, port, ps, pcd, v6, vlan, -1]

    def bg_tcp(f: list) -> bytes:
        path, cseq, sseq, step = f[0], f[1], f[2], f[3]
        if step == 3:
            rem = f[4]
            if rem > 0:
                f[4] = rem - 1
                x = rand()
                port = f[5]
                if x < f[6]:  # server -> client data
                    n = MSS if rand() < 0.7 else 60 + int(rand() * (MSS - 60))
                    if port == 443:
                        o = int(rand() * span)
                        pl = tls_hdr[n] + noise[o:o + n - 5]
                    elif port == 445:
                        o = int(rand() * span)
                        pl = (b"\x00" + (n - 4).to_bytes(3, "big") + smb_tmpl
                              + struct.pack("<HBBIII", 17, 0x50, 0, max(0, n - 84), 0, 0) + noise[o:o + n - 84]) \
                            if n >= 84 else noise[o:o + n]
                    elif port == 80:
                        hdr = http_cache.get(n)
                        if hdr is None:
                            hdr = http_cache[n] = b"HTTP/1.1 200 OK\r\nContent-Length: %6d\r\nServer: x\r\n\r\n" % (n - 54)
                        o = int(rand() * 100000)
                        pl = hdr + text[o:o + n - len(hdr)]
                    else:
                        o = int(rand() * span)
                        pl = noise[o:o + n]
                    f[2] = sseq + len(pl)
                    return tcp_frame(path, 1, sseq, cseq, 0x5018, pl)
                if x < f[7]:  # client -> server data
                    if port == 80:
                        pl = http_req
                    else:
                        n = 36 + int(rand() * 500)
                        o = int(rand() * span)
                        pl = tls_hdr[n] + noise[o:o + n - 5] if port == 443 else noise[o:o + n]
                    f[1] = cseq + len(pl)
                    f[10] = sseq
                    return tcp_frame(path, 0, cseq, sseq, 0x5018, pl)
                if sseq != f[10]:  # ACK what the server sent since the last ACK
                    f[10] = sseq
                    return tcp_frame(path, 0, cseq, sseq, 0x5010, b"")
                f[4] = rem  # nothing to acknowledge: try again
                return bg_tcp(f)
            if rand() < 0.03:  # server aborts
                f[3] = 6
                return tcp_frame(path, 1, sseq, cseq, 0x5014, b"")
            f[1] = cseq + 1
            f[3] = 4
            return tcp_frame(path, 0, cseq, sseq, 0x5011, b"")
        if step == 0:
            stats["tcp_flows"] += 1
            stats["ipv6_flows"] += f[8]
            stats["vlan_flows"] += bool(f[9])
            f[1] = cseq + 1
            f[3] = 1
            return tcp_frame(path, 0, cseq, 0, 0x8002, SYN_OPTS)
        if step == 1:
            f[2] = sseq + 1
            f[3] = 2
            return tcp_frame(path, 1, sseq, cseq, 0x8012, SYN_OPTS)
        if step == 2:
            f[3] = 3
            f[10] = sseq
            return tcp_frame(path, 0, cseq, sseq, 0x5010, b"")
        if step == 4:
            f[2] = sseq + 1
            f[3] = 5
            return tcp_frame(path, 1, sseq, cseq, 0x5011, b"")
        f[3] = 6  # step 5: last ACK; the flow is then replaced
        return tcp_frame(path, 0, cseq, sseq, 0x5010, b"")

    dns_pending: list[bytes] = []

    def bg_dns() -> bytes:
        if dns_pending and rand() < 0.5:
            stats["dns_responses"] += 1
            return dns_pending.pop(0)
        stats["dns_queries"] += 1
        v6 = rand() < 0.1
        cip = (clients_v6 if v6 else clients_v4)[int(rand() * (300 if v6 else 3000))]
        sip = dns_v6 if v6 else dns_v4
        cmac = client_macs[cip[-1]]
        sport = eport(cip)
        txid = int(rand() * 65536)
        qname = dns_names[int(rand() * len(dns_names))]
        qtype = 28 if rand() < 0.3 else 1
        q = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)
        nans = 1 + int(rand() * 3)
        rdata = noise[:16] if qtype == 28 else bytes([93, 184, 216, 34])
        ans = struct.pack("!HHHHHH", txid, 0x8180, 1, nans, 0, 0) + qname + struct.pack("!HH", qtype, 1)
        ans += (b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 300, len(rdata)) + rdata) * nans
        dns_pending.append(udp_frame(sip, cip, 53, sport, ROUTER_MAC, cmac, ans))
        return udp_frame(cip, sip, sport, 53, cmac, ROUTER_MAC, q)

    pool_size = 400
    pool = [new_flow() for _ in range(pool_size)]

    # -- port-902 bookkeeping ---------------------------------------------------------------
    expected = {"long": 0, "short": 0, "short_rst": 0, "unanswered": 0, "refused": 0,
                "tls": {"TLS 1.2": 0, "TLS 1.3": 0}, "ipv6": 0, "vlan": 0}
    active: list[Conn] = []

    def start_conn(kind: str, now: int) -> None:
        host = int(rand() * 4)
        # about 8 % of the short connections and the second long session run over IPv6
        v6 = (expected["long"] == 1) if kind == "long" else (rand() < 0.08)
        if v6:
            cip = admins_v6[int(rand() * len(admins_v6))]
            sip = esxi_v6[host]
        else:
            cip = vc_v4 if rand() < 0.5 else admins_v4[int(rand() * len(admins_v4))]
            sip = esxi_v4[host]
        vlan = esxi_vlan[host]
        path = make_path(cip, sip, eport(cip), 902, client_macs[cip[-1]], ESXI_MAC[:5] + bytes([host + 1]), vlan,
                         cwin=502, swin=1026)
        c = Conn(path, rng.getrandbits(32), rng.getrandbits(32), kind)
        expected["ipv6"] += v6
        expected["vlan"] += bool(vlan)
        version = "TLS 1.3" if rand() < 0.3 else "TLS 1.2"
        if kind == "long":
            expected["long"] += 1
            expected["tls"][version] += 1
            c.gen = authd.console(c, flights[host][version])
        elif kind == "unanswered":
            expected["unanswered"] += 1
            c.gen = authd.unanswered(c)
        elif kind == "refused":
            expected["refused"] += 1
            c.gen = authd.refused(c)
        else:
            rst = rand() < 0.05
            expected["short_rst" if rst else "short"] += 1
            expected["tls"][version] += 1
            c.gen = authd.short(c, flights[host][version], rst, bulk=rand() < 0.15)
        c.ready = now
        active.append(c)

    # -- main loop ----------------------------------------------------------------------------
    mean_gap = 1e6 / pps
    gaps = [max(1, int(rng.expovariate(1.0) * mean_gap)) for _ in range(8192)]
    t = 1_700_000_000 * 1_000_000 + int(rand() * 1e9)
    t0 = t
    reserve = min(packets // 10, 20000)
    main_end = packets - reserve
    long_at = sorted({max(1, int(packets * f)) for f in (0.0005, 0.004, 0.15, 0.45, 0.65, 0.8)[:long_sessions]})
    for _ in range(len(long_at), long_sessions):
        long_at.append(max(1, int(packets * rng.uniform(0.01, 0.5))))
    long_at.sort()
    next_conn = conn_every // 2
    deficit = 0.0
    n902 = 0
    written = 0
    draining = False
    progress_every = max(1, packets // 10)

    with CaptureWriter(out, "pcap", "ethernet") as writer:
        write = writer.write_frame
        i = 0
        while True:
            if not draining:
                if i >= main_end:
                    draining = True
                    for c in active:
                        c.stop = True
                else:
                    if i >= next_conn:
                        x = rand()
                        start_conn("unanswered" if x < 0.10 else "refused" if x < 0.13 else "short", t)
                        next_conn += int(conn_every * (0.5 + rand()))
                    while long_at and i >= long_at[0]:
                        long_at.pop(0)
                        start_conn("long", t)
            elif not active and i >= packets:
                break
            fr = None
            deficit += share
            if draining:
                deficit = 1.0 if rand() < 0.5 else 0.0
            elif deficit > 20.0:
                deficit = 20.0
            if deficit >= 1.0 and active:
                k = len(active)
                j0 = int(rand() * k)
                for j in range(k):
                    c = active[(j0 + j) % k]
                    if c.ready > t and not draining:
                        continue
                    item = next(c.gen, None)
                    if draining:  # compress think times: close everything quickly
                        while type(item) is int:
                            item = next(c.gen, None)
                    if item is None:  # generator exhausted: the connection is done
                        active.remove(c)
                        break
                    if type(item) is int:
                        c.ready = t + item
                        continue
                    fr = item
                    deficit -= 1.0
                    n902 += 1
                    break
            if fr is None:
                if draining and i >= packets and active:
                    continue  # finish the open 902 connections before stopping
                if rand() < 0.06:
                    fr = bg_dns()
                else:
                    slot = int(rand() * pool_size)
                    f = pool[slot]
                    fr = bg_tcp(f)
                    if f[3] == 6:
                        pool[slot] = new_flow()
            write(t / 1e6, fr)  # exact: round(t / 1e6 * 1e6) == t for these microsecond counts
            written += 1
            i += 1
            t += gaps[i & 8191]
            if not quiet and not written & 65535 and written // progress_every != (written - 65536) // progress_every:
                print(f"  {written:,} packets...", file=sys.stderr, flush=True)
    size = os.path.getsize(out)

    e = expected
    established = e["long"] + e["short"] + e["short_rst"]
    manifest = {
        "path": os.path.abspath(out),
        "seed": seed,
        "packets": written,
        "file_size": size,
        "duration_s": round((t - t0) / 1e6, 3),
        "authd_packets": n902,
        "authd_share": round(n902 / written, 4) if written else 0.0,
        "sessions_expected": established + e["unanswered"] + e["refused"],
        "states_expected": {"closed": e["long"] + e["short"], "reset": e["short_rst"],
                            "no_answer": e["unanswered"], "refused": e["refused"]},
        "long_sessions": e["long"],
        "banners_expected": established,
        "tls_expected": e["tls"],
        "authd_ipv6_sessions": e["ipv6"],
        "authd_vlan_sessions": e["vlan"],
        "background": dict(stats),
        "tcp_conversations_expected": stats["tcp_flows"] + established + e["unanswered"] + e["refused"],
        "generator_seconds": round(time.perf_counter() - started, 2),
    }
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", metavar="OUT.pcap")
    ap.add_argument("--packets", type=int, required=True, help="number of packets to write (at least 1000)")
    ap.add_argument("--authd-share", type=float, default=0.03, help="fraction of packets on port 902 (default 0.03)")
    ap.add_argument("--seed", type=int, default=902)
    ap.add_argument("--pps", type=float, default=5000.0, help="mean packet rate for timestamps (default 5000)")
    ap.add_argument("--conn-every", type=int, default=2000,
                    help="start a new short 902 connection about every N packets (default 2000)")
    ap.add_argument("--long-sessions", type=int, default=4, help="long console-like 902 sessions (default 4)")
    ap.add_argument("--manifest", metavar="JSON", help="also write the ground truth to this file")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.packets < 1000:
        ap.error("--packets must be at least 1000")
    if not 0.0 < args.authd_share < 0.5:
        ap.error("--authd-share must be between 0 and 0.5")
    m = generate(args.out, args.packets, args.authd_share, args.seed, args.pps, args.conn_every,
                 args.long_sessions, args.quiet)
    text = json.dumps(m, indent=2)
    if args.manifest:
        with open(args.manifest, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
