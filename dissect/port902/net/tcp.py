"""The TCP layer every followed connection shares (stage 2a, ``net``): outcome and table.

One definition of what a TCP connection came to, from the flags each side sent: Zeek's
``conn_state`` (its conn.log documentation; upper-case history = originator) and the
plain-language ``state`` every table reports (``STATES``).  Both the authd connections of
:mod:`.flows` (reassembled, an authd session each) and the console connections beside 902
(:mod:`..analyzers.consolepath`: control packets only, no reassembly) have two
:class:`TcpSide`-shaped sides and the :class:`TcpOutcome` properties, so the same flag sequence
gives the same state in both.

:class:`ConnTable` is the one connection-table mechanism: both orientations of the 4-tuple map
to one connection, a new connection on a tuple still held is recognised (port reuse: a SYN with
a new initial sequence number after the old one closed or was answered), idle connections are
expired on capture time (never wall-clock time), and the live table has a cap beyond which the
least recently active tenth is finished.  What a connection does with its payload is its own
analyzer (Zeek's analyzer per connection): an authd session behind a reassembler, or the
console hello/request reader; the table only calls ``_finished(conn)`` when one is done.
"""

from __future__ import annotations

from typing import Any

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

ATTEMPT_TIMEOUT_S = 120.0  # an unanswered or rejected attempt is done
CLOSE_DELAY_S = 5.0  # a closed connection (FIN both ways, or RST) waits this long for late segments (Zeek's tcp_close_delay)
IDLE_TIMEOUT_S = 3600.0  # an established connection with no packet for this long is expired
SWEEP_EVERY_S = 30.0

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

#: the plain-language outcome of each conn_state
PLAIN_STATE = {
    "S0": "no_answer", "SH": "no_answer", "RSTOS0": "no_answer",
    "REJ": "refused",
    "SF": "closed",
    "RSTO": "reset", "RSTR": "reset", "RSTRH": "reset",
    "OTH": "partial",
    "S1": "established", "S2": "established", "S3": "established", "SHR": "established",
}

#: state -> what it means (README, --describe)
STATES = {
    "no_answer": "the client's SYN got no SYN-ACK (S0, SH, RSTOS0)",
    "refused": "the server answered the SYN with RST (REJ)",
    "established": "the handshake completed and the connection did not end in the capture, or only one "
                   "side closed (S1, S2, S3, SHR)",
    "closed": "both sides sent FIN (SF)",
    "reset": "an RST after the connection opened (RSTO, RSTR, RSTRH)",
    "partial": "no SYN seen: the capture began inside the connection (OTH)",
}


class TcpSide:
    """What one side of a connection sent, as far as the outcome needs it."""

    __slots__ = ("packets", "syn", "synack", "fin", "rst", "ack_seen", "data_seen", "isn")

    def __init__(self) -> None:
        self.packets = 0
        self.syn = self.synack = self.fin = self.rst = 0
        self.ack_seen = self.data_seen = False
        self.isn: int | None = None  # sequence number of its first SYN / SYN-ACK


def established(o: Any, r: Any) -> bool:
    """Did the connection open?  A SYN answered, data both ways, or a SYN-ACK acknowledged."""
    return bool((o.syn and r.synack) or (o.data_seen and r.data_seen) or (r.synack and (o.ack_seen or o.data_seen)))


def conn_state(o: Any, r: Any) -> str:
    """Zeek's conn_state from the originator's and the responder's side."""
    if not o.syn and not r.synack:
        return "OTH"
    if o.syn and not r.synack:
        if r.rst:
            return "REJ"
        if o.rst:
            return "RSTOS0"
        if o.fin:
            return "SH"
        if r.packets == 0 or not established(o, r):
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


def closed(o: Any, r: Any) -> bool:
    """Over as far as TCP goes: an RST either way, or a FIN each way."""
    return bool(o.rst or r.rst or (o.fin and r.fin))


class TcpOutcome:
    """The outcome properties of a connection with ``orig`` and ``resp`` sides."""

    __slots__ = ()
    orig: Any
    resp: Any

    @property
    def established(self) -> bool:
        return established(self.orig, self.resp)

    @property
    def conn_state(self) -> str:
        return conn_state(self.orig, self.resp)

    @property
    def state(self) -> str:
        """A plain-language outcome: no_answer, refused, established, closed, reset, partial."""
        return PLAIN_STATE[conn_state(self.orig, self.resp)]

    @property
    def closed(self) -> bool:
        return closed(self.orig, self.resp)


class ConnTable:
    """Connections by 4-tuple, both orientations; bounded, expired on capture time.

    A connection kept here has ``orig``/``resp`` sides, ``start``, ``end`` (capture time of its
    last packet), ``first_frame``, ``finished`` and the :class:`TcpOutcome` properties;
    :meth:`_keys` says which two keys it is filed under.  Subclasses put the per-packet work
    in their own ``add`` / ``feed`` and say what a finished connection becomes in :meth:`_finished`.
    """

    def __init__(self, max_live: int, idle_timeout: float = IDLE_TIMEOUT_S,
                 close_linger: float = CLOSE_DELAY_S) -> None:
        """``close_linger``: capture seconds a closed connection is kept for late segments before
        it is finished; a subclass files closed connections in ``closing`` so the sweep that
        finishes them (every ``close_linger``) does not walk the whole table."""
        self.max_live = max_live
        self.idle_timeout = idle_timeout
        self.close_linger = close_linger
        self.sweep_every = min(SWEEP_EVERY_S, close_linger)
        self.table: dict[tuple, Any] = {}
        self.closing: dict[int, Any] = {}  # closed connections waiting out close_linger
        self.live = 0
        self.next_sweep: float | None = None
        self.next_full_sweep: float | None = None
        self.expired = 0
        self.evicted = 0

    def _keys(self, conn: Any) -> tuple[tuple, tuple]:
        return ((conn.orig_ip, conn.orig_port, conn.resp_ip, conn.resp_port),
                (conn.resp_ip, conn.resp_port, conn.orig_ip, conn.orig_port))

    def _finished(self, conn: Any) -> None:
        """A connection left the table (closed, expired, evicted, end of capture)."""

    @staticmethod
    def _reused(conn: Any, from_orig: bool, seq: int) -> bool:
        """A SYN (without ACK) on a tuple still held: a new connection, or the old one's retry?
        New when its initial sequence number is not the one seen before and the old connection
        closed or was answered; a retry of an unanswered SYN keeps its connection."""
        d = conn.orig if from_orig else conn.resp
        return not (d.isn is not None and seq == d.isn) and (conn.closed or conn.established)

    def _insert(self, key: tuple, rev: tuple, conn: Any, now: float) -> None:
        self.table[key] = conn
        self.table[rev] = conn
        self.live += 1
        if self.live > self.max_live:
            self._evict(now)

    def _finish(self, conn: Any) -> None:
        if conn.finished:
            return
        conn.finished = True
        self.closing.pop(id(conn), None)
        for key in self._keys(conn):
            if self.table.get(key) is conn:
                del self.table[key]
        self.live -= 1
        self._finished(conn)

    def open_connections(self) -> list:
        """The connections still in the table (each once), for a reader that looks before the end."""
        return self._conns()

    def _conns(self) -> list:
        seen: dict[int, Any] = {}
        for c in self.table.values():
            seen.setdefault(id(c), c)
        return list(seen.values())

    def sweep(self, now: float) -> None:
        """Expire what is done or idle (on capture time, not wall-clock time): the closed
        connections in ``closing`` every ``close_linger``, the rest in a walk over the whole
        table every 30 s."""
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
            is_closed = c.closed
            if ((is_closed and idle > linger) or ((is_closed or not c.established) and idle > ATTEMPT_TIMEOUT_S)
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
