"""Plain VNC consoles (issue 12): RFB spoken directly to a VM's ``remotedisplay.vnc`` port.

Protocol: RFB (RFC 6143).  The server speaks first with a 12-byte ``ProtocolVersion``
(``RFB 003.003\\n`` / ``003.007`` / ``003.008``; Apple's ``003.889`` and others exist), the client
answers with its own; then security: 3.3 servers decide alone (u32 type), 3.7+ offer a list
(u8 count, u8 types; count 0 = failure with a reason) and the client picks one byte.  VNC
Authentication (type 2) is DES challenge-response: a 16-byte challenge, a 16-byte response,
the password cut to 8 characters.  ``SecurityResult`` (u32, 0 = OK; 3.8 adds a reason on failure)
follows, except for type None before 3.8.  ``ClientInit`` (u8 shared flag), then ``ServerInit``:
u16 width, u16 height, 16-byte pixel format, u32 name length, the desktop name.  Everything is in
clear unless a TLS-based type (18 TLS, 19 VeNCrypt) was chosen.

This is the vmx route the source article warns about (``RemoteDisplay.vnc.enabled/port/password``):
the console is unencrypted, the password sits in the vmx in clear and is limited to 8 characters,
each VM takes its own port on its host, and the connection does not follow a vMotion.  The MKS
console over authd 902 differs on each point (TLS, per-session tickets, one port per host).

Stage: a side analysis (an ``Observer`` of :func:`dissect.port902.analysis.analyze`).  RFB is
recognised by content, never by port: a connection counts as VNC only when its server's first
bytes are an RFB ProtocolVersion.  Ports 5900-5999 are the hint: the capture reader hands their
TCP packets to this observer from the SYN on (and not to the authd pipeline; other ranges:
``VncConsoles(ports=...)``).  On any other port the reader's greeting detection (both engines)
spots a server's ``RFB 003.`` and routes that port here from that packet on
(``Selection.observer_tcp_ports``), so such a session starts at the server's greeting.  Only the
first bytes of each direction are kept (:data:`MAX_HANDSHAKE`); the rest is counted.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from ..io.capture import IPPROTO_TCP
from ..net.flows import fmt_ip as _ip
from ..net.reassembly import Reassembler
from ..net.tcp import PLAIN_STATE, TcpSide, conn_state

HINT_PORTS = frozenset(range(5900, 6000))
MAX_HANDSHAKE = 4096  # bytes kept per direction for the handshake; the rest is only counted
MAX_CONNECTIONS = 65536
MAX_NAME = 1024

SECURITY_TYPES = {
    0: "Invalid", 1: "None", 2: "VNC Authentication", 5: "RA2", 6: "RA2ne", 16: "Tight", 17: "Ultra",
    18: "TLS", 19: "VeNCrypt", 20: "SASL", 21: "MD5 hash", 22: "xvp", 30: "Apple Remote Desktop (DH)",
    113: "MSLogonII",
}
ENCRYPTED_TYPES = frozenset({18, 19})  # TLS-based: what follows the choice is not readable
_VERSION_RE = re.compile(rb"RFB (\d{3})\.(\d{3})\n")

_SYN, _FIN, _RST, _ACK = 0x02, 0x01, 0x04, 0x10


def _ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _Side:
    """One direction: the first MAX_HANDSHAKE bytes with the frame and time of every chunk; a hole
    in the capture ends what can be parsed (``cut``)."""

    __slots__ = ("buf", "marks", "bytes", "packets", "reasm", "cut", "tcp")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.marks: list[tuple[int, int, float]] = []  # (offset in buf, frame, ts)
        self.bytes = 0
        self.packets = 0
        self.cut = False
        self.reasm = Reassembler(self)
        self.tcp = TcpSide()  # the flags this side sent: the connection's outcome (net.tcp)

    def data(self, data: bytes, ts: float, frame: int) -> None:
        self.bytes += len(data)
        room = MAX_HANDSHAKE - len(self.buf)
        if room > 0 and not self.cut:
            self.marks.append((len(self.buf), frame, ts))
            self.buf += data[:room]

    def gap(self, nbytes: int, ts: float, frame: int) -> None:
        self.bytes += nbytes
        self.cut = True

    def at(self, offset: int) -> tuple[int | None, float | None]:
        """Frame and time of the byte at *offset*."""
        frame = ts = None
        for off, f, t in self.marks:
            if off > offset:
                break
            frame, ts = f, t
        return frame, ts

    def usable(self) -> bytes:
        return bytes(self.buf)


@dataclass
class _Conn:
    a: tuple[str, int]
    b: tuple[str, int]
    source: object  # capture index while reading, then its path
    first_frame: int
    last_frame: int
    start: float
    end: float
    syn_from: tuple[str, int] | None = None
    rst: bool = False
    fin: bool = False
    rst_frame: int | None = None
    rst_from: tuple[str, int] | None = None
    fin_from: tuple[str, int] | None = None  # who closed first
    sides: dict = field(default_factory=dict)  # endpoint -> _Side


@dataclass
class VncSession:
    """One plain-VNC (RFB) connection, as its clear handshake shows it."""

    uid: str
    source: str
    client: str
    server: str
    client_ip: str
    server_ip: str
    server_port: int
    start: float
    end: float
    first_frame: int
    last_frame: int
    state: str  # net.tcp.STATES: closed | reset | established | partial | no_answer | refused
    server_version: str | None = None  # "003.008"
    client_version: str | None = None
    version_frame: int | None = None
    security_offered: list[str] = field(default_factory=list)
    security_chosen: str | None = None
    security_frame: int | None = None
    authentication: str | None = None  # none | vnc | other | encrypted | failed_negotiation
    auth_result: str | None = None  # ok | failed | None (not visible / not sent)
    auth_failure_reason: str | None = None
    desktop_name: str | None = None
    width: int | None = None
    height: int | None = None
    server_init_frame: int | None = None
    client_bytes: int = 0
    server_bytes: int = 0
    packets: int = 0
    feature: str = "VNC"
    confidence: float = 0.0
    reasons: list[str] = field(default_factory=list)
    rst_frame: int | None = None
    ended_by: str | None = None  # client | server: who sent the first RST (or, without one, FIN)

    def to_dict(self) -> dict:
        return {
            "uid": self.uid, "source": self.source, "client": self.client, "server": self.server,
            "start": self.start, "end": self.end, "duration_s": round(self.end - self.start, 6),
            "first_frame": self.first_frame, "last_frame": self.last_frame, "state": self.state,
            "rfb_version": {"server": self.server_version, "client": self.client_version,
                            "frame": self.version_frame},
            "security": {"offered": self.security_offered, "chosen": self.security_chosen,
                         "frame": self.security_frame, "authentication": self.authentication,
                         "result": self.auth_result, "failure_reason": self.auth_failure_reason},
            "desktop_name": self.desktop_name,
            "framebuffer": ({"width": self.width, "height": self.height, "frame": self.server_init_frame}
                            if self.width is not None else None),
            "ended_by": self.ended_by,
            "bytes": {"client_to_server": self.client_bytes, "server_to_client": self.server_bytes},
            "packets": self.packets,
            "feature": self.feature, "confidence": self.confidence, "reasons": self.reasons,
        }


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def parse_handshake(server: bytes, client: bytes) -> dict | None:
    """What the RFB opening shows, from the first bytes of each direction; None if the server's
    first bytes are not an RFB ProtocolVersion."""
    m = _VERSION_RE.match(server[:12])
    if not m:
        return None
    out: dict = {"server_version": f"{m.group(1).decode()}.{m.group(2).decode()}", "client_version": None,
                 "offered": [], "chosen": None, "authentication": None, "result": None, "reason": None,
                 "server_init": None, "offsets": {"security": 12}}
    cm = _VERSION_RE.match(client[:12])
    if not cm:
        return out
    out["client_version"] = f"{cm.group(1).decode()}.{cm.group(2).decode()}"
    minor = min(int(m.group(2)), int(cm.group(2))) if m.group(1) == cm.group(1) == b"003" else 3
    s, c = 12, 12  # read positions
    chosen: int | None
    if minor < 7:  # 3.3 (and unknown minors such as 3.5 are read as 3.3, RFC 6143 §7.1.1)
        if len(server) < s + 4:
            return out
        chosen = int.from_bytes(server[s:s + 4], "big")
        s += 4
        out["offered"] = [SECURITY_TYPES.get(chosen, f"type {chosen}")]
        if chosen == 0:
            out["authentication"] = "failed_negotiation"
            if len(server) >= s + 4:
                n = int.from_bytes(server[s:s + 4], "big")
                out["reason"] = _text(server[s + 4:s + 4 + min(n, MAX_NAME)])
            return out
    else:
        if len(server) < s + 1:
            return out
        n = server[s]
        s += 1
        if n == 0:
            out["authentication"] = "failed_negotiation"
            if len(server) >= s + 4:
                ln = int.from_bytes(server[s:s + 4], "big")
                out["reason"] = _text(server[s + 4:s + 4 + min(ln, MAX_NAME)])
            return out
        types = list(server[s:s + n])
        s += n
        out["offered"] = [SECURITY_TYPES.get(t, f"type {t}") for t in types]
        if len(client) < c + 1:
            return out
        chosen = client[c]
        c += 1
    out["chosen"] = SECURITY_TYPES.get(chosen, f"type {chosen}")
    out["offsets"]["chosen_client"] = c - 1 if minor >= 7 else None
    if chosen in ENCRYPTED_TYPES:
        out["authentication"] = "encrypted"
        return out
    if chosen == 1:
        out["authentication"] = "none"
        has_result = minor >= 8
    elif chosen == 2:
        out["authentication"] = "vnc"
        if len(server) < s + 16 or len(client) < c + 16:
            return out
        s += 16  # challenge
        c += 16  # response (DES of the challenge with the password, cut to 8 characters)
        has_result = True
    else:
        out["authentication"] = "other"
        return out  # the type's own exchange follows; not read further
    if has_result:
        if len(server) < s + 4:
            return out
        result = int.from_bytes(server[s:s + 4], "big")
        s += 4
        out["result"] = "ok" if result == 0 else "failed"
        if result != 0:
            if minor >= 8 and len(server) >= s + 4:
                ln = int.from_bytes(server[s:s + 4], "big")
                out["reason"] = _text(server[s + 4:s + 4 + min(ln, MAX_NAME)])
            return out
    # ClientInit (1 byte) from the client, ServerInit from the server
    if len(server) < s + 24:
        return out
    width = int.from_bytes(server[s:s + 2], "big")
    height = int.from_bytes(server[s + 2:s + 4], "big")
    name_len = int.from_bytes(server[s + 20:s + 24], "big")
    name = server[s + 24:s + 24 + min(name_len, MAX_NAME)]
    out["server_init"] = {"width": width, "height": height, "name": _text(name), "offset": s}
    return out


class VncConsoles:
    """Observer: collects TCP on the hint ports, recognises RFB by content, reports each session
    (``analysis.extras["vnc"]``; JSON key ``vnc``; :meth:`frame`)."""

    name = "vnc"

    def __init__(self, ports: Iterable[int] = HINT_PORTS) -> None:
        self.ports = frozenset(ports)
        self._conns: dict[tuple, _Conn] = {}
        self._done: list[_Conn] = []
        self._index = -1  # which capture file (select is called once per file)
        self._live: set[int] = set(self.ports)
        self.sessions: list[VncSession] = []
        self.dropped = 0

    def select(self, selection) -> None:
        self._flush()
        self._index += 1
        selection.tcp_ports |= self.ports
        selection.observer_tcp_ports |= self.ports
        self._live = selection.observer_tcp_ports  # grows when a VNC greeting is seen on another port

    def packet(self, pkt) -> None:
        live = self._live
        if pkt.proto != IPPROTO_TCP or not (pkt.sport in live or pkt.dport in live):
            return
        src, dst = (_ip(pkt.src), pkt.sport), (_ip(pkt.dst), pkt.dport)
        key = (src, dst) if src <= dst else (dst, src)
        conn = self._conns.get(key)
        flags = pkt.flags
        if conn is not None and (flags & _SYN) and not (flags & _ACK) and (conn.fin or conn.rst):
            self._done.append(self._conns.pop(key))  # a new connection on the same ports
            conn = None
        if conn is None:
            if len(self._conns) >= MAX_CONNECTIONS:
                self.dropped += 1
                return
            conn = _Conn(key[0], key[1], self._index, pkt.frame, pkt.frame, pkt.ts, pkt.ts)
            conn.sides = {key[0]: _Side(), key[1]: _Side()}
            self._conns[key] = conn
        conn.last_frame, conn.end = pkt.frame, pkt.ts
        side = conn.sides[src]
        side.packets += 1
        tcp = side.tcp
        tcp.packets += 1
        if flags & _SYN:
            side.reasm.syn(pkt.seq)
            if not flags & _ACK:
                conn.syn_from = src
                tcp.syn += 1
            else:
                tcp.synack += 1
        elif flags & _ACK and not pkt.payload_len:
            tcp.ack_seen = True
        if flags & _RST:
            tcp.rst += 1
        if flags & _FIN:
            tcp.fin += 1
        if pkt.payload_len:
            tcp.data_seen = True
        if flags & _RST and not conn.rst:
            conn.rst, conn.rst_frame, conn.rst_from = True, pkt.frame, src
        if flags & _FIN and not conn.fin:
            conn.fin, conn.fin_from = True, src
        if pkt.payload_len:
            side.reasm.segment(pkt.seq, pkt.payload, pkt.payload_len, pkt.ts, pkt.frame)

    def _flush(self) -> None:
        self._done.extend(self._conns.values())
        self._conns.clear()

    def finish(self, analysis) -> None:
        self._flush()
        sources = [c.path for c in analysis.captures]
        for conn in sorted(self._done, key=lambda c: (c.start, c.first_frame)):
            conn.source = sources[conn.source] if 0 <= conn.source < len(sources) else ""
            s = self._session(conn)
            if s is not None:
                self.sessions.append(s)
        self._done.clear()

    # -- one connection -----------------------------------------------------------------------------

    def _session(self, conn: _Conn) -> VncSession | None:
        a, b = conn.a, conn.b
        sa, sb = conn.sides[a], conn.sides[b]
        # the server speaks first: the side whose bytes start with an RFB ProtocolVersion; with both
        # (the client answers with one too) the one that did not send the SYN, else the earlier one
        cand = [ep for ep, sd in ((a, sa), (b, sb)) if _VERSION_RE.match(sd.usable()[:12])]
        if not cand:
            return None
        if len(cand) == 2:
            if conn.syn_from in cand:
                server = b if conn.syn_from == a else a
            else:
                server = min(cand, key=lambda ep: conn.sides[ep].marks[0][2] if conn.sides[ep].marks else 0)
        else:
            server = cand[0]
        client = b if server == a else a
        ss, cs = conn.sides[server], conn.sides[client]
        hs = parse_handshake(ss.usable(), cs.usable())
        if hs is None:
            return None
        uid = "V" + hashlib.sha1(f"{os.path.basename(conn.source)}|{a}|{b}|{conn.first_frame}".encode()).hexdigest()[:17]
        state = PLAIN_STATE[conn_state(cs.tcp, ss.tcp)]  # the vocabulary of every connection table
        s = VncSession(uid=uid, source=conn.source, client=_ep(*client), server=_ep(*server),
                       client_ip=client[0], server_ip=server[0], server_port=server[1], start=conn.start,
                       end=conn.end, first_frame=conn.first_frame, last_frame=conn.last_frame, state=state,
                       rst_frame=conn.rst_frame)
        closer = conn.rst_from if conn.rst else conn.fin_from
        s.ended_by = None if closer is None else ("server" if closer == server else "client")
        s.server_version, s.client_version = hs["server_version"], hs["client_version"]
        s.version_frame = ss.at(0)[0]
        s.security_offered, s.security_chosen = hs["offered"], hs["chosen"]
        s.security_frame = ss.at(12)[0] if hs["offered"] else None
        s.authentication, s.auth_result, s.auth_failure_reason = hs["authentication"], hs["result"], hs["reason"]
        init = hs["server_init"]
        if init:
            s.width, s.height, s.desktop_name = init["width"], init["height"], init["name"]
            s.server_init_frame = ss.at(init["offset"])[0]
        s.client_bytes, s.server_bytes = cs.bytes, ss.bytes
        s.packets = cs.packets + ss.packets
        s.reasons = [f"server greeted with RFB {s.server_version} (frame {s.version_frame}): a VNC server, "
                     f"not authd"]
        if s.security_chosen:
            s.reasons.append(f"security {s.security_chosen} chosen from {', '.join(s.security_offered) or '-'}")
        if init:
            s.reasons.append(f"ServerInit {s.width}x{s.height} '{s.desktop_name}'")
        s.confidence = 0.99 if s.client_version else 0.9
        return s

    # -- output ---------------------------------------------------------------------------------------

    def to_json(self) -> list[dict]:
        return [s.to_dict() for s in self.sessions]

    def frame(self):
        from ..extras import require

        pd = require("pandas", "the VNC sessions frame")

        rows = []
        for s in self.sessions:
            rows.append({"uid": s.uid, "source": s.source, "client": s.client, "server": s.server,
                         "start": s.start, "duration_s": s.end - s.start, "state": s.state,
                         "rfb_server": s.server_version, "rfb_client": s.client_version,
                         "security_offered": ";".join(s.security_offered), "security_chosen": s.security_chosen,
                         "authentication": s.authentication, "auth_result": s.auth_result,
                         "desktop_name": s.desktop_name, "width": s.width, "height": s.height,
                         "client_bytes": s.client_bytes, "server_bytes": s.server_bytes})
        cols = ["uid", "source", "client", "server", "start", "duration_s", "state", "rfb_server", "rfb_client",
                "security_offered", "security_chosen", "authentication", "auth_result", "desktop_name", "width",
                "height", "client_bytes", "server_bytes"]
        return pd.DataFrame(rows, columns=cols)

    def ports_per_host(self) -> dict[str, Counter]:
        """Server address -> Counter of the VNC ports seen on it (one port per VM)."""
        out: dict[str, Counter] = {}
        for s in self.sessions:
            out.setdefault(s.server_ip, Counter())[s.server_port] += 1
        return out
