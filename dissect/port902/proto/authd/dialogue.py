"""vmware-authd control channel, the conversation (stage 3a): replies matched to commands.

Parsing is direction-aware (client lines are commands, server lines are replies).  Replies are
matched to commands in order, as authd answers them (protocol.md §3.3), which also gives every
login attempt its reply (:class:`LoginAttempt`); what a line may show comes from ``redact.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..http import HTTP_METHODS
from .grammar import _COMMAND_RE, COMMANDS, REDACTED, Line, split_command
from .redact import (
    _CONTROL,
    _ECHO_RE,
    _FIXED_REPLY_RE,
    CREDENTIAL_HEADERS,
    PUBLIC_TOKENS,
    SECRET_VERBS,
    TOKEN_VERBS,
    _redact_http,
    is_ticket,
)


@dataclass(slots=True)
class LoginAttempt:
    """One PASS / XPAS and the reply authd gave it (replies are matched in command order)."""

    user: str | None  # the USER it went with, as shown (tickets redacted); None without a USER
    user_frame: int | None
    pass_ts: float
    pass_frame: int
    code: int | None = None
    reply_ts: float | None = None
    reply_frame: int | None = None
    outcome: str = "unanswered"  # accepted | rejected | unanswered

    def to_dict(self) -> dict:
        return {"user": self.user, "user_frame": self.user_frame, "pass_ts": self.pass_ts,
                "pass_frame": self.pass_frame, "code": self.code, "reply_ts": self.reply_ts,
                "reply_frame": self.reply_frame, "outcome": self.outcome}


@dataclass(slots=True)
class _Pending:
    """A command still waiting for its reply."""

    verb: str  # "" for a line that is no known command
    echo_secret: bool  # its reply may repeat a secret (the ticket of a USER)
    attempt: LoginAttempt | None = None
    connect: int = 0  # 1-based number of the CONNECT / PROXY, 0 for other commands


# which reply codes answer which command, besides errors (>= 400 answer anything)
_ANSWERS = {"USER": (331, 230), "PASS": (230,), "XPAS": (230,), "BANNER": (220,), "QUIT": (221, 200)}
LOOKAHEAD = 8  # how far a reply may skip commands that got none (a silent PASS failure)
MAX_PENDING = 256


def _answers(verb: str, code: int) -> bool:
    if code >= 400:
        return True
    if not verb:
        return False  # an unknown line is answered by an error, if at all
    return code in _ANSWERS.get(verb, (200,))


_NO_QUEUE: deque = deque()  # never appended to (see Dialogue._queue)
MAX_LINES = 5000  # dialogue lines kept per session (a flood of short lines must not grow memory)
MAX_COMMANDS = 1000


@dataclass
class Dialogue:
    """The visible authd conversation of one connection and what it tells.

    authd answers commands in order, like FTP: replies are matched to a queue of commands
    awaiting one (``SESSION`` gets none), so a ``530`` that arrives after the client's next
    line is still the answer to its ``PASS``.  A reply that fits a later command (``331`` while
    a ``PASS`` heads the queue) means the commands before it were not answered.

    What a reply may show depends on the command it answers: the USER argument a 331 / 230
    repeats is redacted at its place when it is a ticket, other replies to a ticket login keep
    only their code unless their text is fixed (``530 Login incorrect.``); a reply that answers
    nothing, once a ticket went by, is treated the same way (no command says where it would be)."""

    show_secrets: bool = False
    lines: list[Line] = field(default_factory=list)
    attempts: list[LoginAttempt] = field(default_factory=list)
    last_user: str | None = None  # the last USER argument, as shown
    connect_target: str | None = None  # CONNECT <vmx> / PROXY <service>
    connect_kind: str | None = None  # "mks" | "proxy" | "vmxargs"
    connect_reply: str | None = None  # text of the 200 Connect reply
    connect_ok: bool | None = None
    connect_code: int | None = None
    connect_frame: int | None = None  # frame of the CONNECT / PROXY line
    connect_reply_frame: int | None = None
    commands: list[str] = field(default_factory=list)  # verbs in order (feature evidence)
    # the shared empty _NO_QUEUE until a command awaits a reply (an empty deque is 600 bytes)
    _queue: deque = field(default_factory=lambda: _NO_QUEUE)
    _ticket_seen: bool = False  # a ticket went by: a reply that answers nothing may repeat it
    _user: tuple[str | None, int | None, bool] = (None, None, False)  # shown, frame, secret
    _connects: int = 0
    lines_dropped: int = 0  # lines past MAX_LINES: parsed (replies still matched), not kept
    commands_dropped: int = 0

    # -- client ------------------------------------------------------------------------------

    def client_line(self, raw: bytes, ts: float, frame: int, truncated: bool = False) -> Line:
        text = raw.decode("latin-1")
        verb, at = split_command(text)
        arg = text[at:].strip()
        bare = arg.strip(_CONTROL)  # what the shape of a ticket is judged on
        verb_out = verb if verb in COMMANDS else None
        if verb_out:
            if len(self.commands) < MAX_COMMANDS:
                self.commands.append(verb)
            else:
                self.commands_dropped += 1
        secret = False  # is the argument a credential?
        if verb in SECRET_VERBS or (verb == "USER" and (is_ticket(bare) or truncated)):
            secret = bool(arg)  # a cut USER may be a cut ticket
        elif verb in TOKEN_VERBS:
            secret = bool(arg) and bare.lower() not in PUBLIC_TOKENS
        shown_arg = REDACTED if secret and not self.show_secrets else arg
        # tickets, session ids and tokens are what a server repeats; a password it never does
        self._ticket_seen = self._ticket_seen or (secret and (verb not in ("PASS", "XPAS") or is_ticket(bare)))
        if secret and not self.show_secrets:
            # the first separator stays as sent (a TAB is worth seeing); how many follow it is not
            # shown: whether they belong to the secret is the daemon's reading, not ours
            m = _COMMAND_RE.match(text)
            assert m is not None  # as in split_command
            shown = text[:m.end(1) + 1] + REDACTED
        elif self.show_secrets or verb_out:
            shown = text
        else:
            shown = _redact_http(text, verb, at)
        pending: _Pending | None
        pending = _Pending(verb if verb_out else "", False)
        if verb == "USER":
            self._user = (shown_arg or None, frame, secret)
            self.last_user = shown_arg or None
            pending.echo_secret = secret
        elif verb in ("PASS", "XPAS"):
            user, user_frame, user_secret = self._user
            attempt = LoginAttempt(user, user_frame, ts, frame)
            self.attempts.append(attempt)
            pending.attempt = attempt
            pending.echo_secret = user_secret or (user is None and is_ticket(bare))
        elif verb in ("CONNECT", "PROXY") or verb.startswith("CONNECT_"):
            parts = arg.rsplit(None, 1)
            if verb == "CONNECT" and len(parts) == 2 and parts[1].lower() == "mks":  # CONNECT <vmx path> mks
                target, kind = parts[0], "mks"
            else:
                target = arg
                kind = "proxy" if verb == "PROXY" else "vmxargs" if verb.startswith("CONNECT_") else "connect"
            self._connects += 1
            self.connect_target = shown_arg if secret else target
            self.connect_kind = kind
            self.connect_ok = self.connect_reply = self.connect_code = self.connect_reply_frame = None
            self.connect_frame = frame
            pending.connect = self._connects
        elif verb == "SESSION" or not text.strip():
            pending = None  # SESSION has no reply of its own (protocol.md §3.3); blank lines get none
        if pending is not None:
            if self._queue is _NO_QUEUE:
                self._queue = deque()
            if len(self._queue) >= MAX_PENDING:
                self._queue.popleft()
            self._queue.append(pending)
        line = Line(ts, frame, True, shown, verb=verb_out, truncated=truncated)
        if len(self.lines) < MAX_LINES:
            self.lines.append(line)
        else:
            self.lines_dropped += 1
        return line

    # -- server ------------------------------------------------------------------------------

    def _take(self, code: int) -> _Pending | None:
        """The command this reply answers, in order; None if it answers none that is waiting."""
        q = self._queue
        if not q:
            return None
        if _answers(q[0].verb, code):
            return q.popleft()
        for i in range(1, min(len(q), LOOKAHEAD)):
            if _answers(q[i].verb, code):
                for _ in range(i):
                    q.popleft()  # answered by nothing: a PASS among them stays "unanswered"
                return q.popleft()
        return None

    def _shown_reply(self, text: str, code: int | None, echo_secret: bool) -> str:
        """A reply with the USER argument it repeats redacted at the grammar's place, when that
        argument is a ticket; any other reply to such a command keeps only its code."""
        if self.show_secrets:
            return text
        for pattern in _ECHO_RE:
            m = pattern.fullmatch(text)
            if m:
                if echo_secret or is_ticket(m.group(1).strip(_CONTROL)):
                    return text[:m.start(1)] + REDACTED + text[m.end(1):]
                return text
        if echo_secret and not _FIXED_REPLY_RE.fullmatch(text):
            return (text[:3] + " " + REDACTED) if code is not None else REDACTED
        return _redact_http(text, "", 0) if code is None else text

    def server_line(self, raw: bytes, ts: float, frame: int, truncated: bool = False) -> Line:
        text = raw.decode("latin-1")
        head = text[:3]
        code = int(head) if len(head) == 3 and head.isascii() and head.isdigit() else None  # "4³²" is isdigit() too
        final = code is not None and text[3:4] != "-"  # "NNN-" starts a multi-line reply
        cmd = self._take(code) if final and code is not None else None
        if cmd is None:  # answers nothing: no grammar says where a repeated ticket would sit
            echo = self._ticket_seen
        else:
            echo = cmd.echo_secret
        shown = self._shown_reply(text, code, echo)
        if cmd is not None and code is not None:  # (only a final reply, which has a code, answers a command)
            if cmd.attempt is not None:
                a = cmd.attempt
                a.code, a.reply_ts, a.reply_frame = code, ts, frame
                a.outcome = "accepted" if code < 400 else "rejected"
            elif cmd.connect and cmd.connect == self._connects:  # the latest CONNECT / PROXY
                self.connect_ok = code == 200
                self.connect_code, self.connect_reply_frame = code, frame
                self.connect_reply = shown
        line = Line(ts, frame, False, shown, code=code, truncated=truncated)
        if len(self.lines) < MAX_LINES:
            self.lines.append(line)
        else:
            self.lines_dropped += 1
        return line

    def tail_may_be_secret(self, from_client: bool, held: bytes) -> bool:
        """A line was cut by missing bytes after ``held``: could the rest of it be a secret?"""
        text = held.decode("latin-1")
        if from_client:
            verb, at = split_command(text)
            if at >= len(text):  # the verb may be incomplete
                return True
            return (verb in SECRET_VERBS or verb in TOKEN_VERBS or verb == "USER" or verb in HTTP_METHODS
                    or verb.rstrip(":").lower() in CREDENTIAL_HEADERS or "<" in text)
        if len(text) < 4 or any(p.echo_secret for p in list(self._queue)[:LOOKAHEAD]):
            return True
        return text[:3] in ("331", "230") or text.split(":", 1)[0].lower() in CREDENTIAL_HEADERS or "<" in text

    # -- what it tells -------------------------------------------------------------------------

    @property
    def login_attempts(self) -> int:
        return len(self.attempts)

    @property
    def logins_ok(self) -> int:
        return sum(1 for a in self.attempts if a.outcome == "accepted")

    @property
    def logins_failed(self) -> int:
        return sum(1 for a in self.attempts if a.outcome == "rejected")

    @property
    def user(self) -> str | None:
        """The user a login was accepted for (the latest), else the last one tried."""
        return login_user(self.attempts, self.last_user)

    @property
    def login_outcome(self) -> str:
        """accepted / rejected / unanswered / none — did a visible PASS earn a 230?"""
        return login_outcome(self.attempts)

    @property
    def login_summary(self) -> str | None:
        return login_summary(self.attempts)


def login_user(attempts: list[LoginAttempt], last_user: str | None = None) -> str | None:
    accepted = [a for a in attempts if a.outcome == "accepted"]
    if accepted:
        return accepted[-1].user
    if attempts and attempts[-1].user is not None:
        return attempts[-1].user
    return last_user


def login_outcome(attempts: list[LoginAttempt]) -> str:
    outcomes = {a.outcome for a in attempts}
    for o in ("accepted", "rejected", "unanswered"):
        if o in outcomes:
            return o
    return "none"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def login_summary(attempts: list[LoginAttempt]) -> str | None:
    """One phrase for every login of a session: "accepted as root after 0 failures; 2 rejected"."""
    if not attempts:
        return None
    rejected = sum(1 for a in attempts if a.outcome == "rejected")
    unanswered = sum(1 for a in attempts if a.outcome == "unanswered")
    tail = "".join([f"; {rejected} rejected" if rejected else "", f"; {unanswered} unanswered" if unanswered else ""])
    accepted = [i for i, a in enumerate(attempts) if a.outcome == "accepted"]
    if accepted:
        first = accepted[0]
        before = sum(1 for a in attempts[:first] if a.outcome == "rejected")
        return f"accepted as {login_user(attempts) or '?'} after {_n(before, 'failure')}" + tail
    users = list(dict.fromkeys(a.user or "?" for a in attempts))
    if rejected:
        return f"rejected: {_n(len(attempts), 'attempt')} ({', '.join(users)})" + (
            f"; {unanswered} unanswered" if unanswered else "")
    return f"no reply to {_n(len(attempts), 'attempt')} ({', '.join(users)})"
