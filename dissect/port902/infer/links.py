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


def find_handoffs(sessions: list[SessionRecord], window_s: float = HANDOFF_WINDOW_S) -> list[Handoff]:
    """Pair each 903 session with the first unclaimed 902 session from the same client that starts
    after it and no later than ``window_s`` after it ended; annotate both records."""
    controls = sorted((s for s in sessions if s.server_port == CONTROL_PORT and s.state != "no_answer"
                       and s.state != "refused"), key=lambda s: s.start)
    targets = sorted((s for s in sessions if s.server_port == HANDOFF_PORT and s.state not in ("no_answer", "refused")),
                     key=lambda s: s.start)
    by_client: dict[str, list[SessionRecord]] = {}
    for t in targets:
        by_client.setdefault(t.client_ip, []).append(t)
    claimed: set[str] = set()
    out: list[Handoff] = []
    for c in controls:
        cands = [t for t in by_client.get(c.client_ip, ())
                 if t.uid not in claimed and t.start >= c.start and t.start - c.end <= window_s]
        if not cands:
            continue
        same = [t for t in cands if t.server_ip == c.server_ip]
        t = (same or cands)[0]
        claimed.add(t.uid)
        h = Handoff(c.uid, t.uid, c.client_ip, c.server, t.server, t.start - c.end, bool(same),
                    c.first_frame, t.first_frame)
        out.append(h)
    return out
