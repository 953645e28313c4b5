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
from array import array
from bisect import bisect_left
from functools import lru_cache
from heapq import merge
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

ATTEMPT_TIMEOUT_S = 120.0  # an unanswered or rejected attempt is done
CLOSE_DELAY_S = 5.0  # a closed connection (FIN both ways, or RST) waits this long for late segments (Zeek's tcp_close_delay)
IDLE_TIMEOUT_S = 3600.0  # an established connection with no packet for this long is expired
SWEEP_EVERY_S = 30.0
MAX_LIVE = 100_000  # live connections; beyond, the least recently active tenth is finished early

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

    def __init__(self, reasm: Reassembler | None) -> None:
        self.packets = 0
        self.syn = self.synack = self.fin = self.rst = 0
        self.fin_frame: int | None = None  # the first FIN this side sent
        self.ack_seen = self.data_seen = self.zero_window = False
        self.reasm = reasm
        self.isn: int | None = None
        self.first_data_ts: float | None = None
        self.last_data_ts: float | None = None


class IssuedUids:
    """The uids a run has handed out, 8 bytes each: a sorted ``array('Q')`` of their first 64
    bits plus a small set of recent ones, merged when the set grows (a Python set of a million
    uids costs ~100 MB, which a SYN flood turns into memory that grows with the capture).
    Exact: two distinct uids sharing their first 64 bits (~1e-8 in a run of a million) would
    only give the second the next hash of its seed."""

    __slots__ = ("_sorted", "_recent")

    def __init__(self) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()

    def __contains__(self, key: int) -> bool:
        if key in self._recent:
            return True
        arr = self._sorted
        i = bisect_left(arr, key)
        return i < len(arr) and arr[i] == key

    def add(self, key: int) -> None:
        self._recent.add(key)
        if len(self._recent) >= max(65536, len(self._sorted) >> 2):  # amortised: O(log n) merges
            self._sorted = array("Q", merge(self._sorted, sorted(self._recent)))
            self._recent = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


def connection_uid(orig_ip: bytes, orig_port: int, resp_ip: bytes, resp_port: int, first_ts: float, isn: int,
                   issued: IssuedUids | None = None) -> str:
    """``C`` + 17 hex digits from the connection itself: its 4-tuple, the time of its first packet
    (to the microsecond) and the client's initial sequence number (as the first packet shows it).
    Neither the file's name nor its place: ``x.pcap`` and ``x.pcap.gz`` give the same uids.
    ``issued`` (the uids of the run so far) keeps them unique within a run: a connection seen
    again (the same capture twice, a span and a host capture of one connection) gets the next
    hash of the same seed."""
    seed = f"{orig_ip.hex()}|{orig_port}|{resp_ip.hex()}|{resp_port}|{first_ts:.6f}|{isn}"
    digest = hashlib.sha1(seed.encode()).hexdigest()[:17]
    if issued is not None:
        n = 1
        while (key := int(digest[:16], 16)) in issued:
            n += 1
            digest = hashlib.sha1(f"{seed}|{n}".encode()).hexdigest()[:17]
        issued.add(key)
    return "C" + digest


class Connection:
    """One TCP connection; ``session`` is its application-level analyzer."""

    __slots__ = ("uid", "orig_ip", "orig_port", "resp_ip", "resp_port", "start", "end", "first_frame",
                 "last_frame", "orig", "resp", "history", "syn_times", "session",
                 "roles_from", "finished", "rst_frame", "source", "make_session")

    def __init__(self, pkt: Packet, orig_is_src: bool, roles_from: str, make_session: Callable, source: str,
                 issued: IssuedUids | None = None, lazy: bool = False) -> None:
        """``lazy``: the session and the reassemblers are made at the first payload byte, so a
        connection attempt that never carries one (a SYN flood, a port scan) costs only its TCP
        facts; ``session`` stays None for it (``model.records.summarize`` knows that shape)."""
        if orig_is_src:
            self.orig_ip, self.orig_port, self.resp_ip, self.resp_port = pkt.src, pkt.sport, pkt.dst, pkt.dport
        else:
            self.orig_ip, self.orig_port, self.resp_ip, self.resp_port = pkt.dst, pkt.dport, pkt.src, pkt.sport
        self.start = self.end = pkt.ts
        self.first_frame = self.last_frame = pkt.frame
        self.source = source
        self.uid = connection_uid(self.orig_ip, self.orig_port, self.resp_ip, self.resp_port, pkt.ts,
                                  pkt.seq if orig_is_src else (pkt.ack - 1) & 0xFFFFFFFF, issued)
        self.make_session = make_session
        if lazy:
            self.session = None
            self.orig = Direction(None)
            self.resp = Direction(None)
        else:
            self.session = make_session(self)
            self.orig = Direction(Reassembler(self.session.client_sink))
            self.resp = Direction(Reassembler(self.session.server_sink))
        self.history = ""  # Zeek's letters, each once: a str (one letter is a shared object; a list is 88 B)
        self.syn_times: list[float] = []
        self.roles_from = roles_from
        self.finished = False
        self.rst_frame: int | None = None

    # -- history --------------------------------------------------------------------

    def _hist(self, letter: str, is_orig: bool) -> None:
        ch = letter if is_orig else letter.lower()
        if ch not in self.history:  # at most a dozen letters: a scan, no set per connection
            self.history += ch

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
                    if d.reasm is not None:
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
                self.history += ch
        if pkt.window == 0 and not fl & (SYN | RST):
            d.zero_window = True
            self._hist("W", is_orig)
        if plen:
            d.data_seen = True
            ch = "D" if is_orig else "d"
            if ch not in self.history:
                self.history += ch
            if d.first_data_ts is None:
                d.first_data_ts = ts
            d.last_data_ts = ts
            reasm = d.reasm
            if reasm is None:
                reasm = self._open_stream(d)
            hint = reasm.segment(pkt.seq, pkt.payload, plen, ts, pkt.frame)
            if hint == "T":
                self._hist("T", is_orig)
            if reasm.gaps:
                self._hist("G", is_orig)

    def _open_stream(self, d: Direction) -> Reassembler:
        """The first payload byte of a lazy connection: its session, and this direction's
        reassembler (with offset 0 from the SYN when one was seen)."""
        if self.session is None:
            self.session = self.make_session(self)
        session = self.session
        reasm = d.reasm = Reassembler(session.client_sink if d is self.orig else session.server_sink)
        if d.isn is not None:
            reasm.syn(d.isn)
        return reasm

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

    def release(self) -> None:
        """After the connection's record is made: drop its session and reassemblers, breaking the
        reference cycles between them (connection -> reassembler -> sink -> session -> connection),
        so they are freed when the table lets go rather than at the collector's next full pass, which
        a run that tunes the collector for speed (the command line) makes rare."""
        session, self.session = self.session, None
        if session is not None:
            session.release()
        self.orig.reasm = self.resp.reasm = None

    def flush(self) -> None:
        for d in (self.orig, self.resp):
            if d.reasm is not None:
                d.reasm.flush()
        if self.session is not None:
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
        issued_uids: IssuedUids | None = None,
        close_linger: float = CLOSE_DELAY_S,
        lazy_sessions: bool = False,
        on_open: Callable[[Connection], None] | None = None,
    ) -> None:
        """``close_linger``: capture seconds a closed connection is kept for late segments before
        it is finished (Zeek's 5 s tcp_close_delay; it was 120 s, which kept every parser of a
        burst of short sessions alive together); the table sweeps at least as often.
        ``lazy_sessions``: make a connection's session at its first payload byte (see
        :class:`Connection`); ``on_open`` hears of each new connection."""
        self.lazy_sessions = lazy_sessions
        self.on_open = on_open
        self.issued_uids = IssuedUids() if issued_uids is None else issued_uids  # shared by every file of a run
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
        self.next_full_sweep: float | None = None
        self.closing: dict[int, Connection] = {}  # closed connections waiting out close_linger
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
            conn = Connection(pkt, orig_is_src, why, self.make_session, self.source, self.issued_uids,
                              self.lazy_sessions)
            if self.on_open is not None:
                self.on_open(conn)
            self.table[key] = conn
            self.table[(pkt.dst, pkt.dport, pkt.src, pkt.sport)] = conn
            self.live += 1
            if self.live > self.max_live:
                self._evict(pkt.ts)
        conn.add(pkt, pkt.src == conn.orig_ip and pkt.sport == conn.orig_port)
        if pkt.flags & (FIN | RST) and conn.closed:
            self.closing[id(conn)] = conn  # swept every close_linger, without a walk over every connection
        next_sweep = self.next_sweep
        if next_sweep is None:
            self.next_sweep = pkt.ts + self.sweep_every
            self.next_full_sweep = pkt.ts + SWEEP_EVERY_S
        elif pkt.ts >= next_sweep:
            self.sweep(pkt.ts)

    def _finish(self, conn: Connection) -> None:
        if conn.finished:
            return
        conn.finished = True
        self.closing.pop(id(conn), None)
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
        """Expire what is done or idle (on capture time, not wall-clock time): closed connections
        every ``close_linger``, idle ones in a walk over the whole table every 30 s."""
        self.next_sweep = now + self.sweep_every
        linger = self.close_linger
        for c in list(self.closing.values()):
            if now - c.end > linger:
                self.expired += 1
                self._finish(c)
        if self.next_full_sweep is not None and now < self.next_full_sweep:
            return
        self.next_full_sweep = now + SWEEP_EVERY_S
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
