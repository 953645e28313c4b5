"""Reconnects (stage 5): a client that comes back soon after a session — one definition for every consumer.

The seed article's two stories are both reconnects: a console that fails and is clicked again
(a *retry*), and a console that follows its VM after a vMotion — the client asks vCenter where
the VM went and connects to the new host (*moved*). The diagnosis turns them into notes and
the timeline draws them as arrows; both read :func:`find_reconnects`, so they cannot disagree.

A later session ``b`` of the same client is linked to the latest earlier session ``a`` that
ended at most ``RECONNECT_WINDOW_S`` before ``b`` began (``b`` may start up to ``OVERLAP_S``
before ``a``'s last packet: the new connection is opened while the old one is torn down), each
``a`` at most once, and only for one of these reasons:

* ``a`` failed (no answer, refused, reset, login rejected, nothing inside: NONE) and ``b`` goes to the same server and
  port: ``retry``;
* both name the same VM (``CONNECT <vmx>``, readable on non-SSL daemons): ``reopened`` on the
  same host, ``moved`` to another;
* ``a`` was a console and ``b`` is a console (or a failed attempt at one) on another authd host:
  ``moved`` (the encrypted form of the same vMotion story; an inference — a user opening a
  second console on another host looks the same), on the same host: ``reopened``.

Busy services that open many sessions in a row (vCenter's NFC copies) are not reconnects:
nothing failed and nothing moved. Sessions are duck-typed (``SessionRecord`` or a row of the
sessions frame with the same attribute names), so DataFrame-only callers use the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple, Protocol

RECONNECT_WINDOW_S = 60.0  # a session this soon after the last one of the same client is a reconnect candidate
OVERLAP_S = 2.0  # the new session may start this long before the old one's last packet
LOOKBACK = 16  # earlier sessions of the same client considered per session (bounded work per session)
CONSOLE_PORTS = (902, 912)  # where authd serves consoles
MKS_MIN_DURATION_S = 2.0  # an unlabelled session with a second handshake that lasted this long is a console


class Session(Protocol):
    uid: str
    client_ip: str
    server_ip: str
    server_port: int
    start: float
    end: float
    duration_s: float
    state: str
    login_outcome: str
    feature: str
    transport: str
    connect_kind: str | None
    connect_target: str | None
    connect_ok: bool | None


#: the same attributes as a plain row, for callers that hold the sessions frame instead of records
Row = NamedTuple("Row", list(Session.__annotations__.items()))


@dataclass(frozen=True, slots=True)
class Reconnect:
    kind: str  # retry | reopened | moved
    earlier: Session
    later: Session
    gap_s: float  # from the end of the earlier session to the start of the later one (negative: overlap)
    why: str


def is_console(s: Session) -> bool:
    """An MKS console session: classified so, or ``CONNECT … mks`` seen, or (unlabelled) a second
    TLS handshake on a session that lasted more than a couple of seconds."""
    if s.feature == "MKS" or s.connect_kind == "mks":
        return True
    return s.feature == "UNKNOWN" and s.transport == "tls+tls2" and s.duration_s > MKS_MIN_DURATION_S


def console_ok(s: Session) -> bool:
    """A console that got its screen: when the CONNECT line is visible, it was answered 200."""
    return is_console(s) and (s.connect_kind != "mks" or s.connect_ok is True) and s.connect_ok is not False


def failed_attempt(s: Session) -> bool:
    """A connection attempt that never reached authd."""
    return s.state in ("no_answer", "refused")


def failure(s: Session) -> str | None:
    """Why a session counts as failed for the retry rule, or None."""
    if s.state in ("no_answer", "refused", "reset"):
        return {"no_answer": "no answer", "refused": "refused", "reset": "reset"}[s.state]
    if s.login_outcome == "rejected":
        return "login rejected"
    if s.feature == "NONE":  # authd answered, nothing followed: a client that gave up (a rejected thumbprint)
        return "an empty session (NONE)"
    return None


def _why(a: Session, b: Session) -> tuple[str, str] | None:
    same_server = a.server_ip == b.server_ip and a.server_port == b.server_port
    fail = failure(a)
    if same_server and fail:
        return "retry", f"retry after {fail}"
    if a.connect_target is not None and a.connect_target == b.connect_target:
        if a.server_ip == b.server_ip:
            return "reopened", "same VM reopened"
        return "moved", "same VM reopened on another host"
    if is_console(a) and b.server_port in CONSOLE_PORTS and (is_console(b) or failed_attempt(b)):
        if b.server_ip != a.server_ip:
            return "moved", "console reopened on another host (vMotion?)"
        return "reopened", "console reopened on the same host"
    return None


def find_reconnects(sessions: Iterable[Session], exclude: Iterable[tuple[str, str]] = ()) -> list[Reconnect]:
    """Every reconnect among ``sessions``, in the order of the later session's start.

    ``exclude`` holds (earlier uid, later uid) pairs already linked otherwise (903 -> 902 hand-offs)."""
    skip = set(exclude)
    by_client: dict[str, list[Session]] = {}
    for s in sorted(sessions, key=lambda s: s.start):
        by_client.setdefault(s.client_ip, []).append(s)
    out: list[Reconnect] = []
    for ss in by_client.values():
        linked: set[str] = set()
        for pos, b in enumerate(ss):
            for a in reversed(ss[max(0, pos - LOOKBACK):pos]):
                gap = b.start - a.end
                if gap > RECONNECT_WINDOW_S or gap < -OVERLAP_S or a.uid in linked or (a.uid, b.uid) in skip:
                    continue
                found = _why(a, b)
                if found:
                    linked.add(a.uid)
                    out.append(Reconnect(found[0], a, b, gap, found[1]))
                    break
    out.sort(key=lambda r: r.later.start)
    return out
