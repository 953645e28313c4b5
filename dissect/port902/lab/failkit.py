"""Building blocks of the failure scenarios: the corp.example cast, a scenario with injected packets, broken paths.

Job: ``FailureScenario`` is a ``scenario.Scenario`` that can also carry packets no connection
sends (ICMP errors from a firewall) and what ``dissect902 doctor`` must report about it (the
``doctor`` block of its labels). The pieces the failure builders share: the cast (vCenter,
ESXi hosts, a GSX-era plaintext authd, resolver, firewall, a Windows and a Mac client), DNS
error replies (NXDOMAIN, SERVFAIL, NODATA with the zone's SOA, RFC 2308) and unanswered
queries, ICMP errors quoting the packet they refuse (RFC 1812 §4.3.2.3), vpxa heartbeats with a
build number (protocol.md §9), TLS #1 attempts a client abandons (§3.2, §8), consoles ended by
a reset or a close (§4.2), the vSphere Client's HTTPS and the relay's WebSocket frames (RFC 6455;
the relay itself is inferred, §4.4).
"""

from __future__ import annotations

import base64
import json
import os
import random
import struct

from . import authd, background
from .channel import CLIENT, SERVER, Step
from .ip import checksum, ip_header, pack_address
from .scenario import Client, Flow, Host, Scenario

DOCTOR_SCHEMA = "dissect902-doctor-labels/1"
RESOLVER = "10.40.0.2"
FIREWALL = "10.40.0.1"
TLS_ALERT_UNKNOWN_CA = bytes.fromhex("1503030002") + bytes([2, 48])  # fatal unknown_ca, TLS 1.2 record
ICMP_ADMIN_PROHIBITED = (3, 13)

VCENTER = Host("vcenter.corp.example", "10.40.0.5")
ESXI_A = Host("esxi-a.corp.example", "10.40.0.11", "esxi8")
ESXI_B = Host("esxi-b.corp.example", "10.40.0.12", "esxi8")
ESXI_07 = Host("esxi-07.corp.example", "10.40.0.27", "esxi8")
GSX = Host("gsx01.corp.example", "10.40.0.31", "gsx-legacy")
ADMIN = Client("admin-ws", "10.40.8.21", "windows")
MAC = Client("mac-admin", "10.40.8.35", "linux")


class FailureScenario(Scenario):
    """A scenario that can also carry injected packets (ICMP errors) and doctor expectations."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.injected: list[tuple[float, int, bytes, str | None]] = []
        self.expected: list[dict] = []
        self.expected_paths: list[str] = []

    def inject(self, flow: Flow, ts: float, packet: bytes, mark: str | None = None) -> None:
        """Put ``packet`` into the capture at ``ts``, counted with ``flow`` (frames, events)."""
        self.injected.append((ts, self.flows.index(flow), packet, mark))

    def expect(self, kind: str, *flows: Flow, severity: str = "problem", note: str = "") -> None:
        """``doctor`` must report a finding of ``kind`` about these connections."""
        self.expected.append({"kind": kind, "severity": severity, "uids": [f.uid for f in flows], "note": note})
        for f in flows:
            f.label.setdefault("related", {})
            f.label["related"]["expected_finding"] = kind

    def records(self):
        rows = super().records()
        rows += [(t, i, 1_000_000 + k, packet, mark) for k, (t, i, packet, mark) in enumerate(self.injected)]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows

    def write(self, path, fmt: str = "pcap", link: str = "ethernet", labels_path=None, **writer_options) -> dict:
        base = os.fspath(path)
        if labels_path is None:
            labels_path = base.rsplit(".", 1)[0] + ".labels.json"
        labels = super().write(path, fmt, link, labels_path, **writer_options)
        problems = sorted({e["kind"] for e in self.expected if e["severity"] == "problem"})
        labels["doctor"] = {
            "schema": DOCTOR_SCHEMA,
            "expected_findings": self.expected,
            "expected_problem_kinds": problems,
            "expected_info_kinds": sorted({e["kind"] for e in self.expected if e["severity"] == "info"}),
            "expected_console_paths": self.expected_paths,
            "exit_code": 1 if problems else 0,
        }
        with open(labels_path, "w") as handle:
            json.dump(labels, handle, indent=1)
            handle.write("\n")
        return labels


def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def dns_reply(query: bytes, rcode: int, soa_zone: str | None = None) -> bytes:
    """A response to ``query`` with no answer and RCODE ``rcode`` (3 NXDOMAIN, 2 SERVFAIL, 0 NODATA),
    with the zone's SOA in the authority section when ``soa_zone`` is given (RFC 2308)."""
    txid = struct.unpack("!H", query[:2])[0]
    authority = b""
    if soa_zone:
        rdata = (_qname("ns1." + soa_zone) + _qname("hostmaster." + soa_zone)
                 + struct.pack("!IIIII", 2024051401, 3600, 600, 1209600, 300))
        authority = _qname(soa_zone) + struct.pack("!HHIH", 6, 1, 300, len(rdata)) + rdata
    return struct.pack("!HHHHHH", txid, 0x8180 | rcode, 1, 0, 1 if authority else 0, 0) + query[12:] + authority


def icmp_error(reporter: str, quoted: bytes, itype: int, code: int, ident: int = 0, ttl: int = 255) -> bytes:
    """An ICMPv4 error from ``reporter`` to the sender of ``quoted`` (an IPv4 packet), quoting as much
    of it as fits in 576 bytes (RFC 1812 §4.3.2.3)."""
    body = quoted[:576 - 28]
    icmp = struct.pack("!BBHI", itype, code, 0, 0) + body
    icmp = icmp[:2] + checksum(icmp).to_bytes(2, "big") + icmp[4:]
    return ip_header(pack_address(reporter), quoted[12:16], 1, len(icmp), ident, ttl) + icmp


def dns_failure(sc: Scenario, client: Client, resolver: str, name: str, at: float, rcode: int | None,
                attempts: int = 2, gaps: tuple[float, ...] = (1.0, 2.0)) -> Flow:
    """``attempts`` queries for ``name`` (A) answered with ``rcode`` — or, with ``rcode=None``,
    retransmitted after each gap and never answered (marks ``dns_query``, ``dns_error``)."""
    flow = sc.udp(client, resolver, 53, at)
    rng = sc.rng_for(flow.uid)
    t = at
    txid = rng.getrandbits(16)
    for n in range(attempts):
        query = background.dns_query(txid if rcode is None else (txid + n) & 0xFFFF, name, 1)
        arrived = flow.conn.send("client", query, t, "dns_query" if n == 0 else None)
        if rcode is not None:
            zone = name.split(".", 1)[1] if rcode in (0, 3) and "." in name else None
            flow.conn.send("server", dns_reply(query, rcode, zone), arrived + rng.uniform(0.0005, 0.004),
                           "dns_error" if n == 0 else None)
        t += gaps[min(n, len(gaps) - 1)]
    what = {None: "never answered", 0: "no address (NODATA)", 2: "SERVFAIL", 3: "NXDOMAIN"}.get(rcode, f"RCODE {rcode}")
    sc.label(flow, feature="NONE", service="dns", transport="udp", expected={"app": "dns"},
             notes=f"{name} -> {what} ({attempts} queries)")
    return flow


def heartbeat_flow(sc: Scenario, host: Host, vcenter: str, at: float, count: int, interval: float = 10.0,
                   build: int = 22380479) -> Flow:
    """vpxa heartbeats host -> vCenter on UDP 902 with a given ESXi build number."""
    flow = sc.udp(Client(host.name, host.ip, "linux"), vcenter, 902, at, client_port=902)
    for n in range(count):
        flow.conn.send("client", background.vpxa_heartbeat(n + 1, host.ip, build=build), at + n * interval,
                       "heartbeat" if n == 0 else None)
    sc.label(flow, feature="NONE", service="vpxa-heartbeat", transport="udp", expected={"app": "vpxa-heartbeat"},
             notes=f"UDP 902 heartbeats, build {build}")
    return flow


def end_console(flow: Flow, how: str, after: float, by: str = "server") -> float:
    """End a console left open by ``mks_console(end="open")``: ``"reset"`` or ``"close"`` (FIN)."""
    conv = flow.conn
    at = conv.ready(by) + after
    if how == "reset":
        t = conv.reset(at=at, by=by, mark="rst")
        flow.label["outcome"] = "reset"
    else:
        t = conv.close(at=at, by=by, mark="fin")
        flow.label["outcome"] = "closed"
    flow.label["notes"] += f"; {how} by the {by}"
    return t


def tls_attempt(sc: Scenario, client: Client, host: Host, at: float, ending: str) -> Flow:
    """Banner and TLS #1 towards an SSL authd, then the client gives up (certificate not accepted):
    ``alert`` (fatal unknown_ca after the server's Certificate, then FIN), ``rst`` (RST right after
    the Certificate) or ``quiet`` (full handshake, close_notify, FIN, no authd command)."""
    flow, ch, pace, _ = sc.authd_tcp(client, host, at)
    ch.conv.open(mark="syn")
    ch.send(SERVER, authd.banner(host.profile.banner_id), pace("reply"), "banner")
    pair = sc.tls(host, "1.2")
    flights = pair.handshake()
    ch.send(CLIENT, flights[0][1], pace("program"), "tls1_client_hello")
    ch.send(SERVER, flights[1][1], pace("tls_server"), "tls1_server_hello")
    if ending == "alert":
        ch.send(CLIENT, TLS_ALERT_UNKNOWN_CA, pace("tls_client"), "tls_alert")
        ch.close(CLIENT, pace("program"))
    elif ending == "rst":
        ch.reset(CLIENT, pace("tls_client"))
    else:
        for side, wire in flights[2:]:
            ch.send(CLIENT if side == "C" else SERVER, wire, pace("tls_client" if side == "C" else "tls_server"))
        ch.tls = pair
        ch.close(CLIENT, pace("tls_client"), notify=True)
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="tls",
             expected={"banner": host.profile.banner, "banner_id": host.profile.banner_id, "ssl_required": True,
                       "tls_handshakes": 1, "tls_version": pair.version, "cert_sha1": host.cert.sha1,
                       "cert_sha256": host.cert.sha256, "app": "authd"},
             notes={"alert": "client sends a fatal unknown_ca alert after the Certificate",
                    "rst": "client resets right after the Certificate",
                    "quiet": "handshake completes, client closes without an authd command"}[ending])
    return flow


def websocket_frames(rng: random.Random, pace, seconds: float) -> list[Step]:
    """Binary WebSocket frames both ways (client frames masked, RFC 6455) for about ``seconds``."""
    steps, spent = [], 0.0
    while spent < seconds:
        gap = rng.uniform(0.05, 0.4)
        size = rng.choice((6, 8, 10, 14))
        mask = rng.randbytes(4)
        steps.append(Step(CLIENT, bytes([0x82, 0x80 | size]) + mask + rng.randbytes(size), gap))
        reply = rng.choice((40, 120, 600, 3000))
        head = bytes([0x82, 126]) + struct.pack("!H", reply) if reply > 125 else bytes([0x82, reply])
        steps.append(Step(SERVER, head + rng.randbytes(reply), pace("render")))
        spent += gap
    return steps


def websocket_upgrade(host: str, target: str, rng: random.Random) -> tuple[bytes, bytes]:
    key = base64.b64encode(rng.randbytes(16)).decode()
    request = (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n"
               "Origin: https://" + host.split(":")[0] + "\r\n\r\n").encode()
    response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + base64.b64encode(rng.randbytes(20)) + b"\r\n"
                b"Sec-WebSocket-Protocol: binary\r\n\r\n")
    return request, response


def clone_ticket(rng: random.Random, host: Host) -> str:
    uuid = authd.ticket(rng)
    return f"cst-VCT-{uuid}--tp-{host.cert.sha1.replace(':', '-')}"


def vsphere_client(sc: Scenario, client: Client, server: Host, at: float, path: str = "/ui/") -> Flow:
    """A short HTTPS exchange with SNI (the vSphere Client or API talking to ``server``):
    handshake, one GET and a small response, close_notify + FIN."""
    flow, ch, pace, rng = sc.tcp(client, server.ip, 443, at)
    ch.conv.open(mark="syn")
    pair = sc.tls(server, "1.2", sni=server.name)
    ch.start_tls(pair, "tls1")
    request = f"GET {path} HTTP/1.1\r\nHost: {server.name}\r\nUser-Agent: Mozilla/5.0\r\n\r\n".encode()
    body = rng.randbytes(600)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n" + body
    ch.play([Step(CLIENT, request, pace("program")), Step(SERVER, response, pace("http"))])
    ch.close(CLIENT, pace.between(0.05, 0.3), notify=True)
    sc.label(flow, feature="NONE", service="https", transport="tls",
             expected={"app": "https", "tls_handshakes": 1, "tls_version": pair.version, "sni": server.name,
                       "cert_sha1": server.cert.sha1})
    return flow
