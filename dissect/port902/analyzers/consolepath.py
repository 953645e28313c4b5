"""Console paths other than 902: what stays visible on 443, 7331 and 7343.

A VM console does not always travel over authd's 902 (protocol.md §4.4, seed article):

* **vCenter console relay** — the (Flash-era and HTML5) vSphere Web Client opened the console
  through a relay on vCenter: ``http://<vc>:7331/console/?vmId=…&sessionTicket=…`` or
  ``https://<vc>:7343/console/?…``; vCenter itself then talks 902 to the host.  A Mac never
  needed 902 for the console.
* **WebMKS on ESXi** — ``wss://<esxi>:443/ticket/<ticket>`` (HTML5 console, Host Client, VMRC ≥ 11).
* **vSphere API** — ``/sdk`` (SOAP) on vCenter or ESXi 443: where tickets are acquired, and
  where a console client asks vCenter which host the VM now runs on.

The capture front end keeps only connection control on these ports (``Selection.
tcp_control_ports``: SYN/FIN/RST, segments that start a TLS handshake record, segments that
start with an HTTP ``G``), so this module reads per connection: the TCP outcome, the
ClientHello's SNI (``tls.parse_client_hello``; a hello cut by the segment boundary still gives
its SNI when that extension came whole), and the HTTP request line and ``Upgrade`` header
when the request is in clear (7331).  Tickets in request targets are credentials and are
redacted unless asked otherwise.

The connections are the shared TCP layer's (``net/tcp.py``): the same table mechanism as the
authd connections (both orientations, port reuse, capture-time expiry, a cap beyond which the
least recently active tenth is finished) and the same outcome (Zeek ``conn_state`` and the
plain-language ``state``) from the same flags; what differs is the analyzer per connection:
here the hello / request reader, with no reassembly.  A connection is finished as soon as TCP
closed it (no linger: nothing after the close is read).  Memory is bounded: a fixed number of
live connections and a fixed number of finished ones (counted beyond).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import Malformed
from ..io.capture import IPPROTO_TCP, Packet
from ..net.flows import fmt_ip as _ip
from ..net.tcp import ACK, FIN, RST, SYN, ConnTable, TcpOutcome, TcpSide
from ..proto.http import REDACTED, HttpRequest, parse_http_request, redact_target  # noqa: F401  (re-exported)
from ..proto.tls import parse_client_hello

__all__ = ["CONSOLE_PORTS", "KINDS", "HttpRequest", "ConsoleConn", "ConsolePathTracker", "parse_http_request",
           "client_hello_info", "redact_target", "classify"]

CONSOLE_PORTS = {443: "https", 7331: "relay (http)", 7343: "relay (https)"}
RELAY_PORTS = frozenset({7331, 7343})

#: kind -> what it means (kept as data: JSON, DataFrame categories and the doctor's text)
KINDS = {
    "vcenter-relay": "vCenter console relay (web client console over 7331/7343); vCenter opens 902 itself",
    "esxi-webmks": "WebMKS straight to ESXi (wss://<esxi>/ticket/<ticket>)",
    "esxi-https": "HTTPS to an ESXi host: WebMKS / VMRC 11+ console or Host Client (path encrypted)",
    "vsphere-api": "vSphere SOAP API (/sdk): tickets, and where a moved VM now runs",
    "vcenter-https": "HTTPS to vCenter (vSphere Client / API; path encrypted)",
    "authd-902-mks": "MKS console over authd on 902, straight to the ESXi host",
    "https": "HTTPS with nothing console-specific visible",
}

MAX_LIVE = 8192
MAX_FINISHED = 20_000

TLS_RECORD = struct.Struct("!BHH")
def _sni_from_truncated(body: bytes) -> str | None:
    """SNI from a ClientHello body cut short by the segment end (extensions walked as far as
    they go); None when the server_name extension is not complete in ``body``."""
    try:
        pos = 2 + 32
        pos += 1 + body[pos]  # session id
        pos += 2 + int.from_bytes(body[pos:pos + 2], "big")  # cipher suites
        pos += 1 + body[pos]  # compression methods
        pos += 2  # extensions length
        while pos + 4 <= len(body):
            etype, elen = struct.unpack_from("!HH", body, pos)
            data = body[pos + 4:pos + 4 + elen]
            if len(data) < elen:
                return None
            if etype == 0:
                if len(data) < 5 or data[2] != 0:
                    return None
                nlen = int.from_bytes(data[3:5], "big")
                name = data[5:5 + nlen]
                return name.decode("latin-1") if len(name) == nlen and nlen else None
            pos += 4 + elen
    except IndexError:
        return None
    return None


def client_hello_info(payload: bytes) -> tuple[str | None, list[str], bool] | None:
    """(SNI, ALPN, complete) of a ClientHello starting ``payload``; None when the segment does
    not start with a TLS handshake record carrying a ClientHello.  ``complete`` is False when
    the hello continued in a later segment (then only the SNI is read, if it came whole)."""
    if len(payload) < 9 or payload[0] != 0x16 or payload[1] != 3 or payload[5] != 1:
        return None
    _ct, _ver, rec_len = TLS_RECORD.unpack_from(payload)
    hs_len = int.from_bytes(payload[6:9], "big")
    body = payload[9:9 + hs_len]
    if hs_len + 4 <= rec_len and len(body) == hs_len:
        try:
            hello = parse_client_hello(body)
        except Malformed:
            return None
        return hello.server_name, list(hello.alpn), True
    return _sni_from_truncated(body), [], False


# -- per connection --------------------------------------------------------------------------------


@dataclass(slots=True)
class ConsoleConn(TcpOutcome):
    """One TCP connection on 443/7331/7343 as its control packets show it; ``state`` and
    ``conn_state`` are the TCP layer's (:class:`~dissect.port902.net.tcp.TcpOutcome`)."""

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    start: float
    first_frame: int
    end: float = 0.0
    last_frame: int = 0
    syn_frame: int | None = None
    synack_frame: int | None = None
    rst_frame: int | None = None
    hello_frame: int | None = None
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    server_hello_frame: int | None = None
    request_frame: int | None = None
    method: str | None = None
    target: str | None = None
    http_host: str | None = None
    upgrade: str | None = None
    kind: str = "https"
    source_index: int = 0
    orig: TcpSide = field(default_factory=TcpSide)  # the client's side
    resp: TcpSide = field(default_factory=TcpSide)  # the server's side
    key: tuple = ()  # (client addr, port, server addr, port) as the packets carry them
    finished: bool = False

    @property
    def syn_count(self) -> int:
        return self.orig.syn

    @property
    def rst_from(self) -> str | None:
        """Who sent an RST: "client", "server" (the client when both did), or None."""
        return "client" if self.orig.rst else "server" if self.resp.rst else None

    @property
    def client_fin(self) -> bool:
        return bool(self.orig.fin)

    @property
    def server_fin(self) -> bool:
        return bool(self.resp.fin)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def frames(self) -> list[int]:
        seen = [self.syn_frame, self.synack_frame, self.hello_frame, self.request_frame, self.server_hello_frame,
                self.rst_frame]
        return sorted({f for f in seen if f is not None})

    def shown_target(self, show_secrets: bool = False) -> str | None:
        if self.target is None:
            return None
        return self.target if show_secrets else redact_target(self.target)

    def to_dict(self, show_secrets: bool = False) -> dict:
        return {
            "kind": self.kind, "client": f"{self.client_ip}:{self.client_port}",
            "server": f"{self.server_ip}:{self.server_port}", "server_port": self.server_port,
            "start": self.start, "end": self.end, "duration_s": round(self.duration_s, 6), "state": self.state,
            "first_frame": self.first_frame, "frames": self.frames, "sni": self.sni, "alpn": self.alpn,
            "http_method": self.method, "http_target": self.shown_target(show_secrets), "http_host": self.http_host,
            "upgrade": self.upgrade, "what": KINDS.get(self.kind, ""),
        }


def classify(conn: ConsoleConn, esxi_ips: set[str] | frozenset = frozenset(),
             vcenter_ips: set[str] | frozenset = frozenset()) -> str:
    """The console path a connection stands for, from what is visible and what is known of
    its server (an ESXi host: it serves 902 or sends heartbeats; vCenter: it receives them)."""
    target = (conn.target or "").lower()
    if conn.server_port in RELAY_PORTS or target.startswith("/console/"):
        return "vcenter-relay"
    if target.startswith("/ticket/"):
        return "esxi-webmks"
    if target.startswith("/sdk"):
        return "vsphere-api"
    if conn.server_ip in esxi_ips:
        if (conn.upgrade or "").lower() == "websocket":
            return "esxi-webmks"
        return "esxi-https"
    if conn.server_ip in vcenter_ips:
        return "vcenter-https"
    return "https"


class ConsolePathTracker(ConnTable):
    """Feeds control packets of 443/7331/7343 into :class:`ConsoleConn` records (O(1) each)."""

    def __init__(self, ports=CONSOLE_PORTS, max_live: int = MAX_LIVE, max_finished: int = MAX_FINISHED) -> None:
        super().__init__(max_live)
        self.ports = frozenset(ports)
        self.max_finished = max_finished
        self.finished: list[ConsoleConn] = []
        self.dropped = 0  # finished connections not kept (beyond max_finished)
        self.packets = 0
        self.source_index = 0

    def _keys(self, conn: ConsoleConn) -> tuple[tuple, tuple]:
        c_ip, c_port, s_ip, s_port = conn.key
        return conn.key, (s_ip, s_port, c_ip, c_port)

    def _finished(self, conn: ConsoleConn) -> None:
        conn.key = ()  # out of the table: the raw addresses and ISNs are not needed any more
        conn.orig.isn = conn.resp.isn = None
        if len(self.finished) < self.max_finished:
            self.finished.append(conn)
        else:
            self.dropped += 1

    def _new(self, pkt: Packet, client_is_src: bool) -> ConsoleConn:
        fwd, rev = (pkt.src, pkt.sport, pkt.dst, pkt.dport), (pkt.dst, pkt.dport, pkt.src, pkt.sport)
        if client_is_src:
            conn = ConsoleConn(_ip(pkt.src), pkt.sport, _ip(pkt.dst), pkt.dport, pkt.ts, pkt.frame, pkt.ts, pkt.frame,
                               key=fwd)
        else:
            conn = ConsoleConn(_ip(pkt.dst), pkt.dport, _ip(pkt.src), pkt.sport, pkt.ts, pkt.frame, pkt.ts, pkt.frame,
                               key=rev)
        conn.source_index = self.source_index
        self._insert(fwd, rev, conn, pkt.ts)  # (end is now: the newest is never the one evicted)
        return conn

    def feed(self, pkt: Packet) -> None:
        frame, ts, proto, src, dst, sport, dport, seq, _ack, flags, _window, payload, _plen, _wlen = pkt
        if proto != IPPROTO_TCP:
            return
        self.packets += 1
        conn = self.table.get((src, sport, dst, dport))
        if conn is None:
            if flags & SYN:  # a client opens (SYN), or a server answers one the capture missed
                conn = self._new(pkt, not flags & ACK)
            elif payload:  # picked up mid-way: the side on a console port is the server
                conn = self._new(pkt, dport in self.ports and not (sport in self.ports and sport < dport))
            else:
                return  # a lone FIN/RST of a connection already finished (or begun before the capture)
        elif flags & SYN and not flags & ACK and self._reused(conn, src == conn.key[0] and sport == conn.key[1], seq):
            self._finish(conn)  # port reuse: a new connection on the same 4-tuple
            conn = self._new(pkt, True)
        from_client = src == conn.key[0] and sport == conn.key[1]
        d = conn.orig if from_client else conn.resp
        d.packets += 1
        conn.end, conn.last_frame = ts, frame
        if flags & SYN:
            if flags & ACK:
                d.synack += 1
                if conn.synack_frame is None and not from_client:
                    conn.synack_frame = frame
            else:
                d.syn += 1
                if conn.syn_frame is None and from_client:
                    conn.syn_frame = frame
            if d.isn is None:
                d.isn = seq
        if payload:
            d.data_seen = True
            first = payload[0]
            if from_client:
                if first == 0x16 and conn.hello_frame is None:
                    info = client_hello_info(payload)
                    if info is not None:
                        conn.hello_frame = frame
                        conn.sni, conn.alpn, _complete = info
                elif conn.request_frame is None and 0x41 <= first <= 0x5A:
                    req = parse_http_request(payload)
                    if req is not None:
                        conn.request_frame = frame
                        conn.method, conn.target, conn.http_host = req.method, req.target, req.host
                        conn.upgrade = req.upgrade
            elif first == 0x16 and conn.server_hello_frame is None and len(payload) >= 6 and payload[5] == 2:
                conn.server_hello_frame = frame
        if flags & (RST | FIN):
            if flags & RST:
                d.rst += 1
                if conn.rst_frame is None:
                    conn.rst_frame = frame
            if flags & FIN:
                d.fin += 1
            if conn.closed:
                self._finish(conn)  # no linger: what follows the close is not read
                return
        if self.next_sweep is None:
            self.next_sweep = ts + self.sweep_every
        elif ts >= self.next_sweep:
            self.sweep(ts)

    def connections(self) -> list[ConsoleConn]:
        return sorted(self.finished, key=lambda c: (c.source_index, c.start, c.first_frame))
