"""TCP connection table (stage 2a): packets -> connections with Zeek-style state.

Direction-agnostic lookup (both 4-tuple orientations map to one
:class:`Connection`), roles from the handshake when seen and from ports and
content when the capture starts mid-connection, Zeek ``conn_state`` and
``history`` (upper case = originator), SYN retries counted, connection reuse
after close detected, and bounded memory: idle connections are expired on
capture time and the live table has a size cap.  Payload goes to one
:class:`~dissect.port902.reassembly.Reassembler` per direction, which feeds the
application-level session (``session.py``) through its sinks.
"""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache
from socket import AF_INET, inet_ntop
from typing import Callable

from ..io.capture import Packet
from .reassembly import Reassembler

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
#: the two directions of a connection, as every later stage numbers them
C2S, S2C = 0, 1
DIRECTIONS = {C2S: "client_to_server", S2C: "server_to_client"}

WELL_KNOWN_AUTHD_PORTS = frozenset({902, 903, 912})
GREETING = b"220 VMware Authentication Daemon"

ATTEMPT_TIMEOUT_S = 120.0  # an unanswered or rejected attempt, or a closed connection, is done
IDLE_TIMEOUT_S = 3600.0  # an established connection with no packet for this long is expired
SWEEP_EVERY_S = 30.0
MAX_LIVE = 200_000

CONN_STATES = {
    "S0": "connection attempt seen, no reply",
    "S1": "established, not terminated",
    "SF": "normal establishment and termination",
    "REJ": "connection attempt rejected",
    "S2": "established, originator closed, no reply from responder",
    "S3": "established, responder closed, no reply from originator",
    "RSTO": "established, originator aborted (RST)",
    "RSTR": "established, responder aborted (RST)",
    "RSTOS0": "originator sent SYN then RST, no SYN-ACK seen",
    "RSTRH": "responder sent SYN-ACK then RST, no SYN seen",
    "SH": "originator sent SYN then FIN, no SYN-ACK seen",
    "SHR": "responder sent SYN-ACK then FIN, no SYN seen",
    "OTH": "no SYN seen, mid-stream traffic",
}


@lru_cache(maxsize=65536)
def fmt_ip(raw: bytes) -> str:
    """Address text of 4 or 16 raw bytes: the one spelling every table and finding matches on."""
    return inet_ntop(AF_INET, raw) if len(raw) == 4 else str(ipaddress.ip_address(raw))


def hostport(ip: object, port: object) -> str:
    """'ip:port', with IPv6 in brackets so the port stays unambiguous."""
    ip = str(ip)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Direction:
    """Per-direction TCP facts of one connection."""

    __slots__ = ("packets", "syn", "synack", "fin", "rst", "ack_seen", "data_seen", "zero_window",
                 "reasm", "isn", "first_data_ts", "last_data_ts", "fin_frame")

    def __init__(self, reasm: Reassembler) -> None:
        self.packets = 0
        self.syn = self.synack = self.fin = self.rst = 0
        self.fin_frame: int | None = None  # the first FIN this side sent
        self.ack_seen = self.data_seen = self.zero_window = False
        self.reasm = reasm
        self.isn: int | None = None
        self.first_data_ts: float | None = None
        self.last_data_ts: float | None = None


def connection_uid(orig_ip: bytes, orig_port: int, resp_ip: bytes, resp_port: int, first_ts: float, isn: int,
                   issued: set[str] | None = None) -> str:
    """``C`` + 17 hex digits from the connection itself: its 4-tuple, the time of its first packet
    (to the microsecond) and the client's initial sequence number (as the first packet shows it).
    Neither the file's name nor its place: ``x.pcap`` and ``x.pcap.gz`` give the same uids.
    ``issued`` (the uids of the run so far) keeps them unique within a run: a connection seen
    again (the same capture twice, a span and a host capture of one connection) gets the next
    hash of the same seed."""
    seed = f"{orig_ip.hex()}|{orig_port}|{resp_ip.hex()}|{resp_port}|{first_ts:.6f}|{isn}"
    uid = "C" + hashlib.sha1(seed.encode()).hexdigest()[:17]
    if issued is not None:
        n = 1
        while uid in issued:
            n += 1
            uid = "C" + hashlib.sha1(f"{seed}|{n}".encode()).hexdigest()[:17]
        issued.add(uid)
    return uid


class Connection:
    """One TCP connection; ``session`` is its application-level analyzer."""

    __slots__ = ("uid", "orig_ip", "orig_port", "resp_ip", "resp_port", "start", "end", "first_frame",
                 "last_frame", "orig", "resp", "history", "syn_times", "session",
                 "roles_from", "finished", "rst_frame", "source")

    def __init__(self, pkt: Packet, orig_is_src: bool, roles_from: str, make_session: Callable, source: str,
                 issued: set[str] | None = None) -> None:
        if orig_is_src:
            self.orig_ip, self.orig_port, self.resp_ip, self.resp_port = pkt.src, pkt.sport, pkt.dst, pkt.dport
        else:
            self.orig_ip, self.orig_port, self.resp_ip, self.resp_port = pkt.dst, pkt.dport, pkt.src, pkt.sport
        self.start = self.end = pkt.ts
        self.first_frame = self.last_frame = pkt.frame
        self.source = source
        self.uid = connection_uid(self.orig_ip, self.orig_port, self.resp_ip, self.resp_port, pkt.ts,
                                  pkt.seq if orig_is_src else (pkt.ack - 1) & 0xFFFFFFFF, issued)
        self.session = make_session(self)
        self.orig = Direction(Reassembler(self.session.client_sink))
        self.resp = Direction(Reassembler(self.session.server_sink))
        self.history: list[str] = []
        self.syn_times: list[float] = []
        self.roles_from = roles_from
        self.finished = False
        self.rst_frame: int | None = None

    # -- history --------------------------------------------------------------------

    def _hist(self, letter: str, is_orig: bool) -> None:
        ch = letter if is_orig else letter.lower()
        if ch not in self.history:  # at most a dozen letters: a list scan, no set per connection
            self.history.append(ch)

    def add(self, pkt: Packet, is_orig: bool) -> None:
        # runs for every selected packet: fields are read once, and the two history letters
        # nearly every packet adds (A, D) are checked inline; same effects, same order as
        # one self._hist call per letter
        d = self.orig if is_orig else self.resp
        d.packets += 1
        ts = pkt.ts
        self.end = ts
        self.last_frame = pkt.frame
        fl = pkt.flags
        plen = pkt.payload_len
        if fl & (SYN | RST | FIN):
            if fl & SYN:
                if fl & ACK:
                    d.synack += 1
                    self._hist("H", is_orig)
                else:
                    d.syn += 1
                    self._hist("S", is_orig)
                    if is_orig:
                        self.syn_times.append(ts)
                if d.isn is None:
                    d.isn = pkt.seq
                    d.reasm.syn(pkt.seq)
            if fl & RST:
                d.rst += 1
                self._hist("R", is_orig)
                if self.rst_frame is None:
                    self.rst_frame = pkt.frame
            if fl & FIN:
                d.fin += 1
                if d.fin_frame is None:
                    d.fin_frame = pkt.frame
                self._hist("F", is_orig)
        elif fl & ACK and not plen:
            d.ack_seen = True
            ch = "A" if is_orig else "a"
            if ch not in self.history:
                self.history.append(ch)
        if pkt.window == 0 and not fl & (SYN | RST):
            d.zero_window = True
            self._hist("W", is_orig)
        if plen:
            d.data_seen = True
            ch = "D" if is_orig else "d"
            if ch not in self.history:
                self.history.append(ch)
            if d.first_data_ts is None:
                d.first_data_ts = ts
            d.last_data_ts = ts
            reasm = d.reasm
            hint = reasm.segment(pkt.seq, pkt.payload, plen, ts, pkt.frame)
            if hint == "T":
                self._hist("T", is_orig)
            if reasm.gaps:
                self._hist("G", is_orig)

    # -- outcome -----------------------------------------------------------------------

    @property
    def established(self) -> bool:
        o, r = self.orig, self.resp
        return bool((o.syn and r.synack) or (o.data_seen and r.data_seen) or (r.synack and (o.ack_seen or o.data_seen)))

    @property
    def conn_state(self) -> str:
        o, r = self.orig, self.resp
        if not o.syn and not r.synack:
            return "OTH"
        if o.syn and not r.synack:
            if r.rst:
                return "REJ"
            if o.rst:
                return "RSTOS0"
            if o.fin:
                return "SH"
            if r.packets == 0 or not self.established:
                return "S0"
        if r.synack and not o.syn:
            if r.rst:
                return "RSTRH"
            if r.fin:
                return "SHR"
        if o.rst:
            return "RSTO"
        if r.rst:
            return "RSTR"
        if o.fin and r.fin:
            return "SF"
        if o.fin:
            return "S2"
        if r.fin:
            return "S3"
        return "S1"

    @property
    def state(self) -> str:
        """A plain-language outcome: no_answer, refused, established, closed, reset, partial."""
        cs = self.conn_state
        if cs in ("S0", "SH", "RSTOS0"):
            return "no_answer"
        if cs == "REJ":
            return "refused"
        if cs == "SF":
            return "closed"
        if cs in ("RSTO", "RSTR", "RSTRH"):
            return "reset"
        if cs == "OTH":
            return "partial"
        return "established"

    @property
    def closed(self) -> bool:
        o, r = self.orig, self.resp
        return bool(o.rst or r.rst or (o.fin and r.fin))

    def flush(self) -> None:
        self.orig.reasm.flush()
        self.resp.reasm.flush()
        self.session.finish()


class FlowTable:
    """Map packets to connections; finished connections go to ``on_finish``."""

    def __init__(
        self,
        make_session: Callable[[Connection], object],
        on_finish: Callable[[Connection], None],
        watched_ports: frozenset[int] | set[int] = WELL_KNOWN_AUTHD_PORTS,
        source: str = "",
        max_live: int = MAX_LIVE,
        idle_timeout: float = IDLE_TIMEOUT_S,
        issued_uids: set[str] | None = None,
        close_linger: float = ATTEMPT_TIMEOUT_S,
    ) -> None:
        """``close_linger``: capture seconds a closed connection is kept for late segments before
        it is finished (a live ``watch`` uses Zeek's 5 s tcp_close_delay, and sweeps as often)."""
        self.issued_uids = set() if issued_uids is None else issued_uids  # shared by every file of a run
        self.make_session = make_session
        self.on_finish = on_finish
        self.watched = watched_ports
        self.source = source
        self.max_live = max_live
        self.idle_timeout = idle_timeout
        self.close_linger = close_linger
        self.sweep_every = min(SWEEP_EVERY_S, close_linger)
        self.table: dict[tuple, Connection] = {}
        self.live = 0
        self.next_sweep: float | None = None
        self.expired = 0
        self.evicted = 0

    def _roles(self, pkt: Packet) -> tuple[bool, str]:
        """Decide whether the packet's sender is the originator, and say why."""
        fl = pkt.flags
        if fl & SYN:
            return (not fl & ACK), "handshake"
        if pkt.payload.startswith(GREETING):
            return False, "greeting"
        sw, dw = pkt.sport in self.watched, pkt.dport in self.watched
        if dw and not sw:
            return True, "port"
        if sw and not dw:
            return False, "port"
        return pkt.sport > pkt.dport, "port_order"

    def add(self, pkt: Packet) -> None:
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        conn = self.table.get(key)
        # the flag test first: ``closed`` is a property, and most packets are not a bare SYN
        if conn is not None and pkt.flags & SYN and not pkt.flags & ACK and conn.closed:
            is_orig = pkt.src == conn.orig_ip and pkt.sport == conn.orig_port
            d = conn.orig if is_orig else conn.resp
            if not (d.isn is not None and pkt.seq == d.isn):  # a new connection reusing the tuple
                self._finish(conn)
                conn = None
        if conn is None:
            orig_is_src, why = self._roles(pkt)
            conn = Connection(pkt, orig_is_src, why, self.make_session, self.source, self.issued_uids)
            self.table[key] = conn
            self.table[(pkt.dst, pkt.dport, pkt.src, pkt.sport)] = conn
            self.live += 1
            if self.live > self.max_live:
                self._evict(pkt.ts)
        conn.add(pkt, pkt.src == conn.orig_ip and pkt.sport == conn.orig_port)
        next_sweep = self.next_sweep
        if next_sweep is None:
            self.next_sweep = pkt.ts + self.sweep_every
        elif pkt.ts >= next_sweep:
            self.sweep(pkt.ts)

    def _finish(self, conn: Connection) -> None:
        if conn.finished:
            return
        conn.finished = True
        for key in ((conn.orig_ip, conn.orig_port, conn.resp_ip, conn.resp_port),
                    (conn.resp_ip, conn.resp_port, conn.orig_ip, conn.orig_port)):
            if self.table.get(key) is conn:
                del self.table[key]
        self.live -= 1
        conn.flush()
        self.on_finish(conn)

    def _conns(self) -> list[Connection]:
        seen: dict[int, Connection] = {}
        for c in self.table.values():
            seen.setdefault(id(c), c)
        return list(seen.values())

    def sweep(self, now: float) -> None:
        """Expire what is done or idle (on capture time, not wall-clock time)."""
        self.next_sweep = now + self.sweep_every
        linger = self.close_linger
        for c in self._conns():
            idle = now - c.end
            closed = c.closed
            if ((closed and idle > linger) or ((closed or not c.established) and idle > ATTEMPT_TIMEOUT_S)
                    or idle > self.idle_timeout):
                self.expired += 1
                self._finish(c)

    def _evict(self, now: float) -> None:
        """Too many live connections: finish the least recently active tenth."""
        conns = sorted(self._conns(), key=lambda c: c.end)
        for c in conns[: max(1, len(conns) // 10)]:
            self.evicted += 1
            self._finish(c)

    def close(self) -> None:
        """End of capture: finish everything still open, in start order."""
        for c in sorted(self._conns(), key=lambda c: (c.start, c.first_frame)):
            self._finish(c)
