"""The analyze pipeline end to end: capture files -> session records -> links.

``analyze(paths)`` is the one entry point the CLI, notebooks and tests share:
stream each capture through the fast packet filter (``capture``), the connection
table (``flows``) and the per-connection state machine (``session``), freeze
finished connections into records (``results``), then link sessions
(``correlate``).  The returned :class:`Analysis` holds the records and builds the
DataFrames and the JSON document from them.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from .output import frames
from .io.capture import DEFAULT_TCP_PORTS, IPPROTO_TCP, CaptureReader, CaptureStats, Packet, Selection
from .errors import CaptureError
from .io.decode import MAX_MALFORMED_WARNINGS
from .io.formats import CONTROL_FIRST_BYTES, CONTROL_TCP_FLAGS
from .infer.classify import classify
from .infer.links import CONTROL_PORT, HANDOFF_PORT, Handoff, find_handoffs
from .net.flows import GREETING, FlowTable, IssuedUids, fmt_ip, hostport
from .model.records import SessionRecord, evolve, failure_of, summarize
from .model.schema import SCHEMA_VERSION
from .analyzers.session import MAX_RECORDS, Interner, Session, Weird

if TYPE_CHECKING:  # pandas loads when a frame is asked for: the command line does not pay for it
    import pandas as pd



class Observer(Protocol):
    """A side analysis fed the non-authd packets it asked for (DNS, ICMP errors, UDP 902,
    console paths on 443/7331/7343): it widens the capture selection in ``select``, sees
    its packets in ``packet``, and reads the finished sessions in ``finish``.  ``name`` is
    its key in ``Analysis.extras`` and in the JSON document."""

    name: str

    def select(self, selection: Selection) -> None: ...

    def packet(self, pkt: Packet) -> None: ...

    def finish(self, analysis: "Analysis") -> None: ...

    def to_json(self) -> object: ...


class SessionEvents(Protocol):
    """Hears of connections while the capture is read: ``opened`` when the analysis starts
    following one, ``finished`` with its frozen record when it ends (not yet classified:
    ``infer.classify.classify(record)`` gives the verdict the result will carry)."""

    def opened(self, conn) -> None: ...

    def finished(self, record: SessionRecord) -> None: ...


@dataclass
class Analysis:
    """Everything one run found; DataFrame builders return frames with declared columns."""

    sessions: list[SessionRecord] = field(default_factory=list)
    handoffs: list[Handoff] = field(default_factory=list)
    captures: list[CaptureStats] = field(default_factory=list)
    capture_weird: list[Weird] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why) skipped by skip_unreadable
    extras: dict[str, Observer] = field(default_factory=dict)
    emitted: int = 0  # sessions handed to ``analyze(emit=...)`` instead of kept in ``sessions``

    @property
    def diagnostics(self):
        """The console diagnosis (``diagnose.Diagnostics``) when it ran, else None."""
        return self.extras.get("diagnostics")

    def findings_frame(self) -> "pd.DataFrame":
        """Diagnosis findings, ranked; an empty frame with columns when the diagnosis did not run."""
        from .infer.diagnose import Diagnostics

        return (self.diagnostics or Diagnostics()).findings_frame()

    @property
    def weird(self) -> list[Weird]:
        out = list(self.capture_weird)
        for s in self.sessions:
            out.extend(s.weird)
        return out

    def session(self, uid: str) -> SessionRecord:
        for s in self.sessions:
            if s.uid == uid:
                return s
        raise KeyError(uid)

    # -- DataFrames --------------------------------------------------------------------

    def sessions_frame(self) -> "pd.DataFrame":
        return frames.sessions_frame(self.sessions)

    def tls_records_frame(self) -> "pd.DataFrame":
        return frames.tls_records_frame(self.sessions)

    def handshakes_frame(self) -> "pd.DataFrame":
        return frames.handshakes_frame(self.sessions)

    def dialogue_frame(self) -> "pd.DataFrame":
        return frames.dialogue_frame(self.sessions)

    def logins_frame(self) -> "pd.DataFrame":
        """Every visible login attempt with its reply (``frames.describe('logins')``)."""
        return frames.logins_frame(self.sessions)

    def weird_frame(self) -> "pd.DataFrame":
        return frames.weird_frame(self.weird)

    def handoffs_frame(self) -> "pd.DataFrame":
        return frames.handoffs_frame(self.handoffs)

    def rfb_messages_frame(self) -> "pd.DataFrame":
        """RFB messages read from decrypted TLS #2 of consoles (needs a key log)."""
        from .output.decrypted import rfb_messages_frame

        return rfb_messages_frame(self.sessions)

    def nfc_operations_frame(self) -> "pd.DataFrame":
        """NFC operations read from decrypted TLS #2 (nbdssl; needs a key log)."""
        from .output.decrypted import nfc_operations_frame

        return nfc_operations_frame(self.sessions)

    def http_frame(self) -> "pd.DataFrame":
        """HTTP (SOAP) messages read from decrypted TLS #1 (needs a key log)."""
        from .output.decrypted import http_frame

        return http_frame(self.sessions)

    def features_frame(self) -> "pd.DataFrame":
        """The classifier's inputs, one row per session (``frames.describe('features')``)."""
        return frames.features_frame(self.sessions)

    # -- JSON ----------------------------------------------------------------------------

    def to_dict(self, records: bool = False, sessions: bool = True) -> dict:
        """The JSON document; ``sessions=False`` leaves the sessions list empty, for a writer that
        streams them one by one (``output.render``) instead of holding all their dicts at once."""
        return {
            "schema_version": SCHEMA_VERSION,
            "captures": [
                {
                    "path": c.path, "format": c.format, "link_types": c.link_types, "size_bytes": c.size_bytes,
                    "packets": c.packets, "selected_packets": c.selected, "first_ts": c.first_ts, "last_ts": c.last_ts,
                    **_chain_files(c),
                }
                for c in self.captures
            ],
            "sessions": [s.to_dict(records=records) for s in self.sessions] if sessions else [],
            "handoffs": [h.to_dict() for h in self.handoffs],
            "weird": [w.to_dict() for w in self.weird],
            **{name: obs.to_json() for name, obs in self.extras.items()},
        }


def analyze(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    show_secrets: bool = False,
    progress: Callable[[int], None] | None = None,
    selection: Selection | None = None,
    max_records: int = MAX_RECORDS,
    observers: Iterable[Observer] | None = None,
    skip_unreadable: bool = False,
    keylog=None,
    keep_plaintext: bool = False,
    events: "SessionEvents | None" = None,
    retain: int | None = None,
    close_linger: float | None = None,
    emit: Callable[[SessionRecord], None] | None = None,
) -> Analysis:
    """Analyse one or more captures.

    ``emit``: stream the sessions instead of keeping them.  Each finished session is judged and
    handed to ``emit`` as soon as nothing later can change it; only the 903 legs and the 902
    sessions of their clients wait for the end, to be paired (a hand-off links a 903 session to
    a 902 one of its client that starts after it; ``infer.links``).  The result then holds none of
    them (``Analysis.emitted`` counts them), so memory does not grow with the number of sessions:
    what ``analyze -f jsonl`` uses.  Observers' ``finish`` sees only the sessions kept (none but
    the paired ones): run it without observers.

    ``keylog``: an NSS key log (a path, several paths, or a ``decrypt.KeyLog``) with which TLS
    is decrypted and dissected (issue 9); secrets in pcapng Decryption Secrets Blocks are used
    whether or not it is given.  ``keep_plaintext`` keeps the decrypted bytes (for
    ``decrypt.export``).  A key log that cannot be read raises ``decrypt.KeyLogError``.

    ``progress`` is called with the cumulative number of capture-file bytes read.
    ``events`` hears of each connection as it opens and each record as its connection ends
    (``dissect902 watch`` prints them live); ``retain`` keeps only the last so many finished
    records per capture for the result (a day-long live run must not grow with its sessions);
    ``close_linger`` finishes a closed connection after so many capture seconds (default 5, ``net.flows``).
    Raises :class:`~dissect.port902.errors.CaptureError` for a file that is not a
    readable capture; damage inside a capture becomes ``weird`` rows instead.  With
    ``skip_unreadable`` such a file becomes an ``unreadable_capture`` weird row (and an
    entry of ``Analysis.unreadable``) and the other captures are analysed.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    observers = list(default_observers(show_secrets) if observers is None else observers)
    return _analyze(paths, result_observers=observers, show_secrets=show_secrets, progress=progress,
                    selection=selection, max_records=max_records, keylog=keylog, keep_plaintext=keep_plaintext,
                    skip_unreadable=skip_unreadable, events=events, retain=retain,
                    close_linger=close_linger, emit=emit)


def _regular_file(path) -> bool:
    try:
        return os.fspath(path) != "-" and os.path.isfile(path)
    except TypeError:  # an open stream
        return False


def _analyze(paths, *, result_observers, show_secrets, progress, selection, max_records, keylog=None,
             keep_plaintext=False, skip_unreadable=False, share: tuple[int, int, int] | None = None,
             concluding: bool = True, events=None, retain=None, close_linger=None, emit=None) -> Analysis:
    """The pipeline.  ``share=(lo, hi, slots)`` (archive/parallel.py): only the connections whose
    4-tuple hashes to a slot in [lo, hi) of ``slots`` go to the connection table; ``concluding=False`` stops before the
    cross-session steps (hand-offs, verdicts, observers' finish), which :func:`conclude` runs
    once over the merged sessions of every share.  ``events``, ``retain``, ``close_linger``: see
    :func:`analyze`."""
    from .decrypt.hooks import capture_keylog, load_keylogs

    observers = result_observers
    given_keys = load_keylogs(keylog)
    result = Analysis()
    stream = None if emit is None else _Stream(emit, result)
    interner = Interner()
    issued_uids = IssuedUids()  # connection uids are unique within a run (net.flows.connection_uid)
    done_before = 0
    chained = False
    for path in paths:
        sessions: list[SessionRecord] | deque[SessionRecord] = deque(maxlen=retain) if retain else []

        keys = given_keys
        for part in getattr(path, "paths", None) or [path]:  # an archive chain: the secrets of all its files
            # a pipe, FIFO or open stream is read once, by the reader: its secrets blocks are not looked for
            keys = capture_keylog(part, keys) if _regular_file(part) else (keys or None)

        def make_session(conn, _secrets=show_secrets, _keys=keys):
            return Session(conn, show_secrets=_secrets, max_records=max_records, intern=interner,
                           keylog=_keys, keep_plaintext=keep_plaintext)

        def finish(conn, _out=sessions):
            rec = summarize(conn)
            conn.release()  # drop the parsers (the record holds what is needed), freed at once, not by the gc
            if stream is not None:
                stream.finished(conn, rec, _out)
            else:
                _out.append(rec)
            if events is not None:
                events.finished(rec)

        def report(n, _base=done_before):  # progress over all files, not per file
            progress(_base + n)

        # this file's own copy of the selection (the caller's is not changed): the observers widen
        # it, the reader widens it further when it sees a greeting on another port; what goes to the
        # authd analysis is decided here, from a snapshot of the ports asked for and from the server
        # endpoints that sent a greeting themselves, never from a set that grows while reading
        base = selection if selection is not None else Selection()
        sel = replace(base, tcp_ports=set(base.tcp_ports), tcp_control_ports=set(base.tcp_control_ports),
                      udp_ports=set(base.udp_ports), observer_tcp_ports=set(base.observer_tcp_ports))
        for obs in observers:
            obs.select(sel)
        watched = frozenset(sel.tcp_ports)
        ctl_ports = frozenset(sel.tcp_control_ports)
        side_ports = sel.observer_tcp_ports  # full TCP for a side analysis (plain VNC); grows with VNC greetings
        side_ports -= DEFAULT_TCP_PORTS
        servers: dict[tuple[bytes, int], int] = {}  # authd server endpoint found by content -> its greeting's frame
        try:
            opener = getattr(path, "open_reader", None)  # io.chain.CaptureChain: many files, one stream
            with (opener or partial(CaptureReader, path))(sel, progress=report if progress is not None else None) as reader:
                # sessions are made at a connection's first payload byte, except where a key log may
                # attach decryption state to every one (the record then carries it even when empty)
                table = FlowTable(make_session, finish, source=reader.path, issued_uids=issued_uids,
                                  lazy_sessions=keys is None, on_open=_on_open(events, stream),
                                  **({} if close_linger is None else {"close_linger": close_linger}))
                add = table.add if share is None else partial(_share_add, table.add, *share)
                for pkt in reader:
                    if pkt.proto == IPPROTO_TCP:
                        sport, dport = pkt.sport, pkt.dport
                        if sport in side_ports or dport in side_ports:
                            for obs in observers:
                                obs.packet(pkt)
                            continue
                        if sport in watched or dport in watched:
                            add(pkt)
                            continue
                        if (pkt.src, sport) in servers or (pkt.dst, dport) in servers:
                            add(pkt)
                            continue
                        if sel.detect_greeting and pkt.payload.startswith(GREETING):
                            # content detection attaches to this server endpoint, never to the port
                            servers[(pkt.src, sport)] = pkt.frame
                            server = hostport(fmt_ip(pkt.src), sport)
                            result.capture_weird.append(Weird(
                                pkt.ts, pkt.frame, "authd_on_unusual_port",
                                f"authd greeting from {server}: connections to that server endpoint are analysed as "
                                f"authd sessions (other hosts on port {sport} are not)", "", reader.path))
                            add(pkt)
                            continue
                        if not (sport in ctl_ports or dport in ctl_ports):
                            continue  # on a port the reader follows only for a greeting elsewhere
                        first = pkt.payload[:1]
                        if not (pkt.flags & CONTROL_TCP_FLAGS or (first and first[0] in CONTROL_FIRST_BYTES)):
                            continue  # what the reader keeps of a control port, as it would without the greeting
                    for obs in observers:
                        obs.packet(pkt)
                table.close()
                stats = reader.stats
        except CaptureError as exc:
            if not skip_unreadable:
                raise
            name = os.fspath(path)
            result.unreadable.append((name, str(exc)))
            result.capture_weird.append(Weird(None, None, "unreadable_capture", str(exc), "", name, None))
            # a placeholder keeps the captures list in step with the observers' per-file index
            result.captures.append(CaptureStats(path=name, format="unreadable"))
            try:
                done_before += os.path.getsize(name)
            except OSError:
                pass
            continue
        done_before += stats.size_bytes
        result.captures.append(stats)
        for w in stats.warnings:
            result.capture_weird.append(Weird(None, w.frame, w.kind, w.detail, "", w.path, w.offset))
        if stats.malformed > MAX_MALFORMED_WARNINGS:
            result.capture_weird.append(Weird(None, None, "malformed_packet",
                                              f"{stats.malformed - MAX_MALFORMED_WARNINGS} more malformed packets "
                                              f"({stats.malformed} in all) after the first {MAX_MALFORMED_WARNINGS}",
                                              "", reader.path))
        if table.evicted:
            result.capture_weird.append(Weird(None, None, "flow_table_overflow",
                                              f"{table.evicted} connections finished early: more than "
                                              f"{table.max_live} were open at once", "", reader.path))
        if retain:  # a deque of the last ones: _chain_provenance replaces by index
            sessions = list(sessions)
        if opener is not None:
            chained = True
            _chain_provenance(result, reader, sessions)
        result.sessions.extend(sorted(sessions, key=lambda s: (s.start, s.first_frame)))
    if concluding:
        conclude(result, observers, chained)
    if stream is not None:
        stream.flush()
    return result


def _on_open(events, stream):
    """The flow table's ``on_open``: the listener's, the stream's, both or none."""
    hooks = [h for h in (events.opened if events is not None else None,
                         stream.opened if stream is not None else None) if h is not None]
    if len(hooks) < 2:
        return hooks[0] if hooks else None

    def both(conn) -> None:
        for hook in hooks:
            hook(conn)
    return both


class _Stream:
    """``analyze(emit=...)``: judge and hand on each finished session unless a 903 -> 902
    hand-off may still pair it, in which case it waits for ``conclude``.

    A 902 session can be claimed only by a 903 session of its client that started no later
    (``infer.links``), which was opened before it in capture order: when the 902 session ends,
    that 903 session is either live (counted per client in ``live_903``) or has ended as a
    possible control (its client is in ``control_clients``).  A 902 session with neither is
    final at once; so are sessions on other ports and attempts that never connected."""

    def __init__(self, emit: Callable[[SessionRecord], None], result: Analysis) -> None:
        self.emit = emit
        self.result = result
        self.live_903: dict[bytes, int] = {}
        self.control_clients: set[str] = set()

    def opened(self, conn) -> None:
        if conn.resp_port == CONTROL_PORT:
            self.live_903[conn.orig_ip] = self.live_903.get(conn.orig_ip, 0) + 1

    def finished(self, conn, rec: SessionRecord, held: list) -> None:
        if conn.resp_port == CONTROL_PORT:
            left = self.live_903.get(conn.orig_ip, 0) - 1
            if left > 0:
                self.live_903[conn.orig_ip] = left
            else:
                self.live_903.pop(conn.orig_ip, None)
        connected = rec.state not in ("no_answer", "refused")
        if connected and rec.server_port == CONTROL_PORT:
            self.control_clients.add(rec.client_ip)
            held.append(rec)
        elif connected and rec.server_port == HANDOFF_PORT and (
                rec.client_ip in self.control_clients or conn.orig_ip in self.live_903):
            held.append(rec)
        else:
            self.result.emitted += 1
            self.emit(judge(rec))

    def flush(self) -> None:
        """After ``conclude``: the paired (and unpaired) waiting sessions, in start order."""
        held, self.result.sessions = self.result.sessions, []
        for rec in held:
            self.result.emitted += 1
            self.emit(rec)


def _share_add(add, lo: int, hi: int, slots: int, pkt: Packet) -> None:
    """Hand the packet on when its connection is in this share: its slot, a hash of the
    unordered 4-tuple that every process computes alike (crc32, not Python's per-process salted
    hash) modulo ``slots``, lies in [lo, hi)."""
    a, b = pkt.src + pkt.sport.to_bytes(2, "big"), pkt.dst + pkt.dport.to_bytes(2, "big")
    if lo <= zlib.crc32(a + b if a < b else b + a) % slots < hi:
        add(pkt)


def conclude(result: Analysis, observers, chained: bool, judged: bool = False) -> None:
    """The cross-session steps, once over all sessions: hand-offs, verdicts, inherited
    features, then the observers' ``finish`` (the diagnosis).  ``judged``: the records carry
    their verdicts already (``judge`` ran where they were built, archive/parallel.py); a verdict
    reads nothing that the hand-off links set, so attaching the links after it is the same."""
    # records are frozen: hand-off links, verdicts and inherited features are attached as new values
    if chained:  # archive sensors are separate networks: a hand-off never links two of them
        by_source: dict[str, list[SessionRecord]] = {}
        for rec in result.sessions:
            by_source.setdefault(rec.source, []).append(rec)
        result.handoffs = [h for group in by_source.values() for h in find_handoffs(group)]
    else:
        result.handoffs = find_handoffs(result.sessions)
    links = {}
    for h in result.handoffs:  # both ends carry the whole link
        links[h.from_session] = links[h.to_session] = (h.from_session, h.to_session, round(h.gap_s, 6))
    sessions = result.sessions
    for i, rec in enumerate(sessions):  # in place: the unjudged record is freed as its successor is made
        link = links.get(rec.uid)
        if link is not None:
            rec = evolve(rec, handoff_from=link[0], handoff_to=link[1], handoff_gap_s=link[2])
        sessions[i] = rec if judged else judge(rec)
    inherit_handoff_features(result)
    for obs in observers:
        obs.finish(result)
        result.extras[obs.name] = obs


def judge(rec: SessionRecord) -> SessionRecord:
    """The record with its verdict attached (feature, confidence, reasons, the dialogue read from
    record sizes, and a failure inferred from it): what one session says on its own, before the
    cross-session steps (a 903 leg inherits its console's feature later).  ``watch`` prints this."""
    if rec.visible is not None and rec.decryption.decrypted:  # the metadata verdict reads only the wire
        from .decrypt.hooks import classify_decrypted

        return classify_decrypted(rec, classify, failure_of)
    verdict = classify(rec)
    failure = rec.failure
    if verdict.logins and not rec.logins and failure is None:
        failure = failure_of(rec, *_inferred_login(verdict))
    return evolve(rec, feature=verdict.label, confidence=verdict.confidence, reasons=verdict.reasons,
                  inferred_dialogue=verdict.dialogue, inferred_logins=verdict.logins, failure=failure)


def _chain_provenance(result: Analysis, reader, sessions: list[SessionRecord]) -> None:
    """After an archive chain (``io.chain.ChainReader``): files that could not be read become
    ``unreadable_capture`` rows naming them, overlapping files a ``captures_overlap`` row, and
    every session gets ``sources`` (the files and local frame ranges its span crosses)."""
    for name, why in reader.errors:
        result.unreadable.append((name, why))
        result.capture_weird.append(Weird(None, None, "unreadable_capture", why, "", name, None))
    for earlier, later in reader.overlaps:
        result.capture_weird.append(Weird(None, None, "captures_overlap",
                                          f"{later} starts before {earlier} ends: packets of the two files are "
                                          "not in time order, so sessions across them may be split", "", reader.path))
    for i, rec in enumerate(sessions):
        sessions[i] = evolve(rec, sources=reader.sources(rec.first_frame, rec.last_frame))


def _chain_files(stats) -> dict:
    """The JSON ``files`` of an archive chain's capture entry (nothing for a single file)."""
    files = getattr(stats, "files", None)
    if files is None:
        return {}
    return {"files": [{"path": f.path, "format": f.stats.format, "frame_offset": f.offset, "packets": f.stats.packets,
                       "size_bytes": f.stats.size_bytes, "first_ts": f.stats.first_ts, "last_ts": f.stats.last_ts}
                      for f in files]}


def inherit_handoff_features(result: Analysis) -> None:
    """The 903 leg of a classic ESX hand-off serves the feature its 902 session carries on
    (a console): label it so, saying why, when its own traffic did not say more."""
    index = {s.uid: i for i, s in enumerate(result.sessions)}
    for h in result.handoffs:
        i = index[h.from_session]
        src, dst = result.sessions[i], result.sessions[index[h.to_session]]
        if src.feature_inferred in ("NONE", "UNKNOWN") and (dst.feature_inferred or dst.feature) not in ("NONE", "UNKNOWN"):
            src = result.sessions[i] = evolve(src, feature_inferred=dst.feature_inferred or dst.feature)
        if src.feature in ("NONE", "UNKNOWN") and dst.feature not in ("NONE", "UNKNOWN"):
            result.sessions[i] = evolve(
                src, feature=dst.feature, confidence=round(min(dst.confidence or 0.5, 0.9), 3),
                reasons=[f"classic ESX 903 leg handed over to 902 session {dst.uid} ({dst.feature}) "
                         f"{h.gap_s:.2f} s later"] + [f"own traffic: {r}" for r in src.reasons])


def default_observers(show_secrets: bool = False) -> list[Observer]:
    """The side analyses ``analyze`` runs unless told otherwise: the console diagnosis
    (DNS, ICMP errors, UDP 902 heartbeats, console paths on 443/7331/7343)."""
    from .analyzers.vnc import VncConsoles
    from .infer.diagnose import Diagnostics

    return [VncConsoles(), Diagnostics(show_secrets=show_secrets)]  # VNC first: the diagnosis reads it


def _inferred_login(verdict) -> tuple[str | None, int | None]:
    """The session's login outcome as the size decoder read it: "rejected" when every attempt
    was read as rejected, with the frame of the last rejecting reply."""
    if not verdict.logins or any(x != "rejected" for x in verdict.logins):
        return ("accepted" if "accepted" in verdict.logins else None), None
    frames = [row["frame"] for row in verdict.dialogue if row["line"].startswith("530")]
    return "rejected", (frames[-1] if frames else None)
