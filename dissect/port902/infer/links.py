"""Links between sessions (stage 5): the classic ESX 903 -> 902 hand-off.

Classic ESX (service-console era) first takes a console client on 903, served by
the service console's authd, and then has it reconnect to 902 on the vmkernel
(seed article; protocol.md §7 — the exact exchange is not public).  On the wire
that is a 903 connection followed shortly by a 902 connection from the same
client.  Zeek links a control connection to the connection it announces with an
expected-connection table and a time window; this module does the same with the
903 sessions as the expectations.

The 902 side is normally the same server address; the vmkernel can also have an
address of its own, so a 902 connection to another server from the same client in
the window is accepted when no same-address candidate exists, and the link says so.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from ..model.records import SessionRecord

HANDOFF_WINDOW_S = 10.0
CONTROL_PORT = 903
HANDOFF_PORT = 902


@dataclass(frozen=True, slots=True)
class Handoff:
    from_session: str  # uid of the 903 session
    to_session: str  # uid of the 902 session
    client: str
    from_server: str
    to_server: str
    gap_s: float  # from the end of the 903 session to the start of the 902 one (negative: they overlap)
    same_server: bool
    from_frame: int
    to_frame: int

    def to_dict(self) -> dict:
        return {
            "from_session": self.from_session,
            "to_session": self.to_session,
            "client": self.client,
            "from_server": self.from_server,
            "to_server": self.to_server,
            "gap_s": round(self.gap_s, 6),
            "same_server": self.same_server,
            "from_frame": self.from_frame,
            "to_frame": self.to_frame,
        }


class _Queue:
    """Sessions sorted by start time with "first unclaimed at or after t" in amortised
    near-constant time: a claimed slot points past itself (union-find with path halving)."""

    __slots__ = ("items", "starts", "nxt")

    def __init__(self, items: list[SessionRecord]) -> None:
        self.items = items
        self.starts = [t.start for t in items]
        self.nxt = list(range(len(items) + 1))  # nxt[i] == i: slot i is free (len(items): the end)

    def _find(self, i: int) -> int:
        nxt = self.nxt
        while nxt[i] != i:
            nxt[i] = nxt[nxt[i]]
            i = nxt[i]
        return i

    def first(self, t: float) -> int | None:
        """Index of the first unclaimed session starting at or after ``t``."""
        i = self._find(bisect_left(self.starts, t))
        return i if i < len(self.items) else None

    def claim(self, i: int) -> None:
        self.nxt[i] = i + 1


def find_handoffs(sessions: list[SessionRecord], window_s: float = HANDOFF_WINDOW_S) -> list[Handoff]:
    """Pair each 903 session with the first unclaimed 902 session from the same client that starts
    after it and no later than ``window_s`` after it ended; annotate both records.

    The 902 sessions are indexed by client and by (client, server), sorted by start, so each
    903 session costs a binary search, not a scan of every session of its client."""
    controls = sorted((s for s in sessions if s.server_port == CONTROL_PORT and s.state != "no_answer"
                       and s.state != "refused"), key=lambda s: s.start)
    targets = sorted((s for s in sessions if s.server_port == HANDOFF_PORT and s.state not in ("no_answer", "refused")),
                     key=lambda s: s.start)
    by_client: dict[str, list[SessionRecord]] = {}
    by_pair: dict[tuple[str, str], list[SessionRecord]] = {}
    for t in targets:
        by_client.setdefault(t.client_ip, []).append(t)
        by_pair.setdefault((t.client_ip, t.server_ip), []).append(t)
    client_q = {k: _Queue(v) for k, v in by_client.items()}
    pair_q = {k: _Queue(v) for k, v in by_pair.items()}
    # where each target sits in the two queues, to claim it in both
    slot: dict[int, tuple[int, int]] = {}
    for q in client_q.values():
        for i, t in enumerate(q.items):
            slot[id(t)] = (i, -1)
    for q in pair_q.values():
        for i, t in enumerate(q.items):
            slot[id(t)] = (slot[id(t)][0], i)
    out: list[Handoff] = []
    for c in controls:
        cq = client_q.get(c.client_ip)
        if cq is None:
            continue
        t = None
        same = False
        pq = pair_q.get((c.client_ip, c.server_ip))
        if pq is not None:
            i = pq.first(c.start)
            if i is not None and pq.items[i].start - c.end <= window_s:
                t, same = pq.items[i], True
        if t is None:
            i = cq.first(c.start)
            if i is not None and cq.items[i].start - c.end <= window_s:
                t = cq.items[i]
        if t is None:
            continue
        ci, pi = slot[id(t)]
        cq.claim(ci)
        pair_q[(t.client_ip, t.server_ip)].claim(pi)
        h = Handoff(c.uid, t.uid, c.client_ip, c.server, t.server, t.start - c.end, same,
                    c.first_frame, t.first_frame)
        out.append(h)
    return out
