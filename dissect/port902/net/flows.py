"""The authd connections (stage 2a, ``net``): packets -> connections with Zeek-style state.

The table mechanics (both 4-tuple orientations map to one :class:`Connection`, port reuse,
capture-time expiry, a size cap) and the outcome (Zeek ``conn_state``, the plain-language
``state``) are the shared TCP layer's (``tcp.py``), which the console connections beside 902
use too.  Here: roles from the handshake when seen and from ports and
content when the capture starts mid-connection, Zeek ``conn_state`` and
``history`` (upper case = originator), SYN retries counted.  Payload goes to one
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
from .tcp import (  # noqa: F401  (re-exported: the TCP layer's names, as flows has always had them)
    ACK,
    ATTEMPT_TIMEOUT_S,
    CLOSE_DELAY_S,
    CONN_STATES,
    FIN,
    IDLE_TIMEOUT_S,
    PSH,
    RST,
    SWEEP_EVERY_S,
    SYN,
    URG,
    ConnTable,
    TcpOutcome,
)

#: the two directions of a connection, as every later stage numbers them
C2S, S2C = 0, 1
DIRECTIONS = {C2S: "client_to_server", S2C: "server_to_client"}

WELL_KNOWN_AUTHD_PORTS = frozenset({902, 903, 912})
GREETING = b"220 VMware Authentication Daemon"

MAX_LIVE = 100_000  # live connections; beyond, the least recently active tenth is finished early


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


class Connection(TcpOutcome):
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

    # -- outcome: the TcpOutcome properties (established, conn_state, state, closed) -----------

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


class FlowTable(ConnTable):
    """Map packets to connections; finished connections go to ``on_finish``.

    The table mechanics (both orientations, cap, capture-time expiry, port reuse) are
    :class:`~.tcp.ConnTable`'s; each :class:`Connection` carries its reassemblers and the
    application-level session ``make_session`` gives it (its analyzer)."""

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
        super().__init__(max_live, idle_timeout, close_linger)
        self.lazy_sessions = lazy_sessions
        self.on_open = on_open
        self.issued_uids = IssuedUids() if issued_uids is None else issued_uids  # shared by every file of a run
        self.make_session = make_session
        self.on_finish = on_finish
        self.watched = watched_ports
        self.source = source
        self.table: dict[tuple, Connection] = {}

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
        # the flag test first: most packets are not a bare SYN
        if conn is not None and pkt.flags & SYN and not pkt.flags & ACK and self._reused(
                conn, pkt.src == conn.orig_ip and pkt.sport == conn.orig_port, pkt.seq):
            self._finish(conn)  # a new connection reusing the tuple
            conn = None
        if conn is None:
            orig_is_src, why = self._roles(pkt)
            conn = Connection(pkt, orig_is_src, why, self.make_session, self.source, self.issued_uids,
                              self.lazy_sessions)
            if self.on_open is not None:
                self.on_open(conn)
            self._insert(key, (pkt.dst, pkt.dport, pkt.src, pkt.sport), conn, pkt.ts)
        conn.add(pkt, pkt.src == conn.orig_ip and pkt.sport == conn.orig_port)
        if pkt.flags & (FIN | RST) and conn.closed:
            self.closing[id(conn)] = conn  # swept every close_linger, without a walk over every connection
        next_sweep = self.next_sweep
        if next_sweep is None:
            self.next_sweep = pkt.ts + self.sweep_every
            self.next_full_sweep = pkt.ts + SWEEP_EVERY_S
        elif pkt.ts >= next_sweep:
            self.sweep(pkt.ts)

    def _finished(self, conn: Connection) -> None:
        conn.flush()
        self.on_finish(conn)
