"""Findings while the capture is still being read: what ``dissect902 watch`` prints live (stage: infer).

``Diagnostics.finish`` runs once, at the end of the input. A live run instead asks
:class:`LiveFindings`, every few seconds of capture time, which findings the evidence so far
supports (:meth:`LiveFindings.snapshot`: the registered checks over the finished sessions kept
and the side tables, without changing them) and reports each one once, when it is *settled*:

* the sessions it names have ended (only finished sessions are in a snapshot; a snapshot is due
  every ``every_s`` capture seconds, and at once when a session has ended and capture time moved on);
* a console-path attempt on 443/7331/7343 counts as unanswered only after ``ATTEMPT_TIMEOUT_S``
  without a packet (the connection table's rule for an unanswered 902 SYN), a DNS query after
  ``DNS_TIMEOUT_S`` (the diagnosis' own rule at the end of a capture);
* a failed lookup is reported ``FOLLOW_WINDOW_S`` after that name's last query or response (a
  retry that resolves it, or the 902 connection that follows it, comes within that window);
* a reconnect note waits while a connection of the same client that started between the two
  sessions is still open (it could pair with either of them);
* a finding naming a client and a server waits while a connection between the two has closed
  but is not finished yet (it lingers ``flows.CLOSE_DELAY_S`` for late segments, so its record
  comes a few seconds later): it may be more of the same, e.g. the next rejected login of a burst.

Each finding has a stable key (``Finding.key``: the check and its subjects, e.g. client, host
and port of a group of refused attempts, or a session uid), so it is reported once; when it grows
later (more attempts in the same group, a changed likelihood) the final summary shows its end
state. At the end of the input every finding is settled: :meth:`LiveFindings.at_end` gives the
final diagnosis' findings not reported yet, so a whole file yields exactly the findings of
``dissect902 doctor`` for it. Plain-VNC findings come only then (``analyzers.vnc`` reads its
sessions at the end).

Cost stays bounded over a day-long run: a snapshot reads only what is kept (the last ``--keep``
sessions, the capped side tables), runs at most every ``every_s`` capture seconds, and only while
the CPU time spent in snapshots stays under ``share`` of the process' CPU time since the start
(CPU, not wall-clock time: other load on the machine does not buy snapshots more room; plus a
small allowance); live reports are capped per kind like the ranking (``MAX_FINDINGS_PER_KIND``).
"""

from __future__ import annotations

import copy
import gc
import time
from collections import Counter, OrderedDict
from dataclasses import replace
from typing import Callable, Iterable

from ...net.flows import ATTEMPT_TIMEOUT_S
from . import rank as ranking
from .checks import CHECKS
from .context import _Context
from .evidence import TRACKED_QTYPES
from .findings import AUTHD_PORTS, DNS_TIMEOUT_S, FOLLOW_WINDOW_S, MAX_FINDINGS_PER_KIND, Finding
from .observer import Diagnostics

EVERY_S = 2.0  # capture seconds between two snapshots
SHARE = 0.10  # at most this share of the process' CPU time goes to snapshots ...
ALLOWANCE_S = 0.5  # ... beyond this much (small captures never skip one)
HOLD_S = {"dns": FOLLOW_WINDOW_S}  # key family -> capture seconds after the finding's last_ts
RELATION_KINDS = frozenset({"console_retry", "console_followed_vm"})
MAX_KEYS = 100_000  # keys remembered for findings not printed (beyond the per-kind cap)


class _Paths:
    """The console-path tracker as a snapshot sees it: finished connections and the live ones,
    except attempts that could still be answered."""

    def __init__(self, tracker, now: float) -> None:
        conns = list(tracker.finished)
        for c in tracker.open_connections():
            if c.state == "no_answer" and now - c.end < ATTEMPT_TIMEOUT_S:
                continue
            conns.append(c)
        self._conns = sorted(conns, key=lambda c: (c.source_index, c.start, c.first_frame))
        self.dropped = tracker.dropped

    def connections(self) -> list:
        return self._conns


def snapshot(diag: Diagnostics, sessions: Iterable, now: float, sources: list[str]) -> list[Finding]:
    """The ranked findings the evidence up to capture time ``now`` supports, as ``finish`` would
    write them if the capture ended here (queries pending for DNS_TIMEOUT_S count as unanswered),
    over ``sessions`` (finished, classified records) and ``diag``'s tables, which are not changed."""
    view = copy.copy(diag)  # shares the tables; what finish would change is replaced below
    view._counts = Counter(diag._counts)
    view._sources = list(sources)
    view._spans = [(None, None)] * len(sources)  # one live input: no other capture to correlate with
    view._pending = OrderedDict()
    names = view._names = dict(diag._names)
    for key, q in diag._pending.items():
        if q.qtype not in TRACKED_QTYPES or now - q.ts < DNS_TIMEOUT_S:
            continue
        nk = (key[0], key[1], q.name.lower())
        entry = names.get(nk)
        if entry is not None and entry is diag._names.get(nk):  # copy before _expire writes to it
            names[nk] = replace(entry, outcomes=Counter(entry.outcomes), fam_fail=list(entry.fam_fail),
                                fail_frames=list(entry.fail_frames))
        view._expire(key, q, now)
    view._paths = _Paths(diag._paths, now)
    ctx = _Context(view, [s for s in sessions if s.server_port in AUTHD_PORTS or s.banner is not None])
    ctx.vnc = None  # analyzers.vnc has its sessions only at the end
    candidates = []
    for _name, check in CHECKS:
        candidates.extend(check(ctx))
    return ranking.rank(candidates, view._counts)


class LiveFindings:
    """Reports each finding once, when settled (see the module docstring).

    >>> live = LiveFindings(diag)                      # the Diagnostics observer analyze runs
    >>> for f in live.poll(sessions, now, [source]):   # call as capture time advances
    ...     print(f.title)
    >>> rest = live.at_end(result.diagnostics.findings)
    """

    def __init__(self, diag: Diagnostics, every_s: float = EVERY_S, share: float = SHARE,
                 allowance_s: float = ALLOWANCE_S) -> None:
        self.diag = diag
        self.every_s, self.share, self.allowance_s = every_s, share, allowance_s
        self.printed: dict[tuple, tuple[Finding, str]] = {}  # key -> (finding as printed, "live" | "end")
        self.per_kind: Counter = Counter()
        self.not_printed: set[tuple] = set()  # settled beyond the per-kind cap
        self.snapshots = 0
        self.skipped = 0  # snapshots skipped to stay within the time share
        self.spent_s = 0.0  # CPU seconds (time.process_time) spent in snapshots
        self._started = time.process_time()
        self._next: float | None = None  # capture time of the next snapshot
        self._last: float | None = None  # capture time of the last one
        self._ended = False  # a session ended since the last snapshot

    def session_ended(self) -> None:
        """A session ended: the next snapshot is due as soon as capture time moves on (sessions
        that end together, in one sweep of the connection table, wait for the same snapshot)."""
        self._ended = True

    def due(self, now: float | None) -> bool:
        """Time for a snapshot: ``every_s`` capture seconds since the last, or a session ended and
        capture time moved on since the last; and within the time share."""
        if now is None:
            return False
        if self._next is not None and now < self._next and not (self._ended and now > self._last):
            return False
        if self.spent_s > self.share * (time.process_time() - self._started) + self.allowance_s:
            self.skipped += 1
            self._next = now + self.every_s
            return False
        return True

    def poll(self, sessions: Iterable | Callable[[], Iterable], now: float | None, sources: list[str],
             open_starts: Callable[[str], list[float]] | None = None, force: bool = False,
             closing: Callable[[str, str], bool] | None = None) -> list[Finding]:
        """The findings settled since the last call (none when no snapshot is due).  ``sessions`` may
        be a function giving them (called only for a snapshot, and counted in its time);
        ``open_starts(ip)`` gives the start times of the connections from ``ip`` still open (for
        reconnect notes); ``closing(client, server)``: a connection between them has closed and
        is waiting out the close delay."""
        if now is None or not (force or self.due(now)):
            return []
        t0 = time.process_time()
        self._next, self._last, self._ended = now + self.every_s, now, False
        self.snapshots += 1
        out = []
        collecting = gc.isenabled()
        gc.disable()  # a snapshot's objects die with it: collecting them only promotes and rescans the kept ones
        try:
            if callable(sessions):
                sessions = sessions()
            for f in snapshot(self.diag, sessions, now, sources):
                if f.key in self.printed or f.key in self.not_printed or not self._settled(f, now, open_starts, closing):
                    continue
                if self._take(f, "live"):
                    out.append(f)
        finally:
            if collecting:
                gc.enable()
            self.spent_s += time.process_time() - t0
        return out

    def at_end(self, findings: Iterable[Finding]) -> list[Finding]:
        """The final diagnosis' findings not reported yet (the input ended: all are settled)."""
        out = []
        for f in findings:
            if f.key not in self.printed and f.key not in self.not_printed and self._take(f, "end"):
                out.append(f)
        return out

    def phase(self, f: Finding) -> str | None:
        """How ``f`` was reported: "live" (while reading), "end" (at the end of the input), or None."""
        got = self.printed.get(f.key)
        return got[1] if got is not None else None

    def gone(self, findings: Iterable[Finding]) -> list[Finding]:
        """Findings reported live that the final diagnosis no longer has (later evidence changed
        them, or their sessions are no longer among the ones kept)."""
        final = {f.key for f in findings}
        return [f for key, (f, _) in self.printed.items() if key not in final]

    def _take(self, f: Finding, phase: str) -> bool:
        if self.per_kind[f.kind] >= MAX_FINDINGS_PER_KIND:
            if len(self.not_printed) < MAX_KEYS:
                self.not_printed.add(f.key)
            return False
        self.per_kind[f.kind] += 1
        self.printed[f.key] = (f, phase)
        return True

    def _settled(self, f: Finding, now: float, open_starts, closing=None) -> bool:
        hold = HOLD_S.get(f.key[0] if f.key else f.kind, 0.0)
        if hold and f.last_ts is not None and now < f.last_ts + hold:
            return False
        if f.kind in RELATION_KINDS and open_starts is not None and f.hosts:
            lo, hi = f.first_ts or 0.0, f.last_ts or now
            if any(lo <= t <= hi for t in open_starts(f.hosts[0])):
                return False
        if closing is not None and len(f.hosts) >= 2 and closing(f.hosts[0], f.hosts[1]):
            return False
        return True
