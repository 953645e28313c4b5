"""vmware-authd control channel: banner grammar and command/reply lines (stage 3a).

authd is FTP-like: the server greets with ``220 VMware Authentication Daemon
Version x.y[: SSL Required][, capability ...]\\r\\n`` (protocol.md §2), then commands
(``USER``, ``PASS``, ``SESSION``, ``THUMBPRINT``, ``CONNECT``, ``PROXY`` ...) and
``NNN text`` replies follow, one per CRLF-terminated line (§3).  On SSL daemons only
the banner is in clear; Workstation's 912 and old 1.0 daemons show everything.

Parsing here is direction-aware (client lines are commands, server lines are
replies) and incremental: :class:`LineBuffer` takes bytes in arbitrary chunks and
hands back complete lines with the time and frame where each line started.
Credentials never leave this module unredacted unless asked.  Redaction goes by the
grammar, never by searching text for a secret seen before: the argument of ``PASS`` /
``XPAS`` / ``SESSION`` / ``SESSIONID`` / ``CONNECT_VPXA``, a ticket-shaped ``USER``, a
``THUMBPRINT`` client token, the ticket a ``331``/``230`` reply repeats at its argument's
place, tickets in HTTP targets and credential headers.  Replies are matched to commands in
order, which also gives every login attempt its reply (:class:`LoginAttempt`).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from .http import HTTP_METHODS, redact_target

GREETING_PREFIX = b"220 VMware Authentication Daemon Version "
MAX_LINE = 1016  # VMware's own test client caps a reply line here (_AUTHD_PROTOCOL_LINEMSGLEN)
REDACTED = "<redacted>"

COMMANDS = {
    "USER": "user name or MKS ticket",
    "PASS": "password or MKS ticket",
    "XPAS": "munged password",
    "SESSION": "service-ticket session id",
    "SESSIONID": "session id (not a command; answered 530)",
    "BANNER": "ask for the greeting again",
    "THUMBPRINT": "register a client token, get the SHA-1 thumbprint of the next certificate",
    "THUMBPRINT_SHA2": "as THUMBPRINT, SHA-256",
    "CONNECT": "hand the connection to a VM's MKS (console)",
    "CONNECT_ARGV": "VMXARGS: start/attach with arguments",
    "CONNECT_DEBUG_ARGV": "VMXARGS, debug",
    "CONNECT_STATS_ARGV": "VMXARGS, stats",
    "PROXY": "hand the connection to a service (NFC)",
    "GLOBAL": "unknown",
    "START": "unknown",
    "STARTDEBUG": "unknown",
    "TOKENKEY": "unknown",
    "QUIT": "end the session",
}

REPLY_CODES = {
    200: "OK",
    220: "WELCOME",
    221: "GOODBYE",
    230: "LOGINOK",
    331: "NEEDPASSWD",
    500: "BADCOMMAND",
    501: "BADARGS",
    502: "MALFORMED",
    503: "USERFIRST",
    510: "CONFIGPROBLEM",
    511: "VMSTARTPROBLEM",
    512: "VMSERVERDPROBLEM",
    513: "TICKETERROR",
    514: "CONNECTPROBLEM",
    530: "NOTLOGGEDIN",
    550: "NOACCESS",
    551: "NOTREGISTERED",
    552: "VMBUSY",
    553: "NOSUCHVM",
    554: "NOSUCHSERVICE",
    630: "TICKET",
}

_BANNER_RE = re.compile(
    r"^220 VMware Authentication Daemon Version (?P<version>\d+(?:\.\d+)*)(?P<rest>.*)$", re.S
)
_TICKET_RE = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|cst-.+|[0-9a-f]{2}(?:[ -][0-9a-f]{2}){15,}.*)$",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line, parsed.  ``capabilities`` keeps the daemon's own words."""

    text: str
    version: str
    ssl_required: bool
    capabilities: tuple[str, ...]
    server_daemon_protocol: str | None
    mks_display_protocol: str | None
    vmxargs: bool
    nfcssl: bool
    nfcssl_t: bool
    sha256: bool
    empty_slots: int  # ", ," slots (Workstation leaves the VMXARGS slot empty)

    @property
    def product(self) -> str:
        return guess_product(self)


def parse_banner(line: str) -> Banner | None:
    """Parse ``220 VMware Authentication Daemon Version ...`` (without CRLF); None if it is not one."""
    m = _BANNER_RE.match(line)
    if not m:
        return None
    rest = m.group("rest")
    ssl_required = False
    if rest.startswith(":"):
        head, _, rest = rest[1:].partition(",")
        ssl_required = "ssl required" in head.lower()
        rest = "," + rest if rest else ""
    caps: list[str] = []
    sdp = mks = None
    vmx = nfcssl = nfcssl_t = sha = False
    empty = 0
    for raw in rest.split(",")[1:]:
        tok = raw.strip()
        if not tok:
            empty += 1
            continue
        caps.append(tok)
        low = tok.lower()
        if low.startswith("serverdaemonprotocol:"):
            sdp = tok.split(":", 1)[1].strip()
        elif low.startswith("mksdisplayprotocol:"):
            mks = tok.split(":", 1)[1].strip()
        elif low.startswith("vmxargs"):
            vmx = True
        elif low.startswith("nfcssl"):
            nfcssl = True
            nfcssl_t = low.endswith("/t")
        elif low.startswith("sha256"):
            sha = True
    return Banner(
        text=line,
        version=m.group("version"),
        ssl_required=ssl_required,
        capabilities=tuple(caps),
        server_daemon_protocol=sdp,
        mks_display_protocol=mks,
        vmxargs=vmx,
        nfcssl=nfcssl,
        nfcssl_t=nfcssl_t,
        sha256=sha,
        empty_slots=empty,
    )


def guess_product(b: Banner, server_port: int | None = None) -> str:
    """Map a banner variant to the product that sends it (protocol.md §2.1, B1-B11)."""
    if server_port == 903:
        return "classic ESX service console (903)"
    if not b.ssl_required:
        if b.server_daemon_protocol == "SOAP" and b.version.startswith("1.0"):
            return "VMware Workstation (912, no SSL)"
        if b.server_daemon_protocol == "IPC":
            return "GSX / VMware Server 1.x (no SSL)"
        return "legacy authd (GSX / ESX 2.x era, no SSL)"
    if b.empty_slots and b.nfcssl and not b.vmxargs:
        return "VMware Workstation (902)"
    if b.sha256:
        return "ESXi 8.x"
    if b.nfcssl_t:
        return "ESXi 6.x-7.x"
    if b.nfcssl and b.vmxargs:
        return "ESXi 5.x"
    if b.server_daemon_protocol == "IPC":
        return "GSX / VMware Server 1.x"
    if b.server_daemon_protocol == "SOAP":
        return "ESX/ESXi 3.x-4.x or VMware Server 2"
    if b.mks_display_protocol:
        return "VMware Server 1.x / ESX 3.x"
    return "legacy authd with SSL (ESX 3.x era)"


@dataclass(frozen=True, slots=True)
class Line:
    """One complete authd line: a client command or a server reply."""

    ts: float
    frame: int
    from_client: bool
    text: str  # decoded latin-1, CRLF stripped, secrets redacted unless asked otherwise
    verb: str | None = None  # client commands
    code: int | None = None  # server replies
    truncated: bool = False
    decrypted: bool = False  # read from decrypted TLS (a key log), not from the wire


# -- where secrets sit in a line ------------------------------------------------------------------
#
# Redaction works on the grammar, never by searching a line for a secret seen earlier: searching
# turns every occurrence of a short secret inside ordinary words into a marker (with PASS "or",
# "Password required for" reads "Passw<redacted>d required f<redacted>"), which spells the secret
# out by what it removed, and costs time quadratic in the length of the dialogue.

_SEP = "\\s\\x00-\\x1f\\x7f"  # whitespace and control characters end a verb (PASS<TAB>x is PASS x)
_CONTROL = "".join(map(chr, range(32))) + " \x7f\x85\xa0"
_COMMAND_RE = re.compile(f"[{_SEP}]*([^{_SEP}]*)\\s*", re.S)  # the argument starts after blanks only
SECRET_VERBS = frozenset({"PASS", "XPAS", "SESSION", "SESSIONID", "CONNECT_VPXA"})  # the argument is a credential
TOKEN_VERBS = frozenset({"THUMBPRINT", "THUMBPRINT_SHA2"})  # the client token binds the hand-off to this client
PUBLIC_TOKENS = frozenset({"plaintext"})  # nfclib / VDDK send the literal PlainText: not a secret
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_HEADER_RE = re.compile(r"([A-Za-z0-9-]{1,64}):[ \t]*")
_XML_SECRET_RE = re.compile(r"(<(?:[\w.-]+:)?(?:password|ticket|token|sessionId|samlToken)(?:\s[^>]*)?>)([^<]+)", re.I)
_ECHO_RE = (  # the replies that repeat the USER argument, and where (protocol.md §3.3)
    re.compile(r"331[ -]Password required for (.+?)\.?", re.S | re.I),
    re.compile(r"230[ -]User (.+?) logged in\.?", re.S | re.I),
)
_FIXED_REPLY_RE = re.compile(r"\d{3}|530 Login incorrect\.?|530 Please login with USER and PASS\.?"
                             r"|220 VMware Authentication Daemon Version [^\r\n]*", re.I)
_LINE_HEAD_RE = re.compile(rb"(?:\d{3}[ -]|HTTP/\d|([A-Za-z_]{2,20})(?:[ \t]|\r?\n|\r?$))")


def split_command(text: str) -> tuple[str, int]:
    """A client line's verb (upper case) and where its argument starts.  Whitespace or a control
    character ends the verb (``PASS<TAB>x`` and ``PASS\\0x`` are PASS, as a C parser stopping at
    the first blank would see them); blanks after it are skipped, a control character is kept
    as the start of the argument."""
    m = _COMMAND_RE.match(text)
    assert m is not None  # every part of the pattern is optional: it matches any text
    return m.group(1).upper(), m.end()


def is_ticket(arg: str) -> bool:
    """A USER argument shaped like an MKS / clone / service ticket rather than a user name."""
    return bool(_TICKET_RE.match(arg))


def starts_like_line(head: bytes) -> bool:
    """Do these bytes (first of a line whose start is not certain) begin a command or a reply?"""
    m = _LINE_HEAD_RE.match(head)
    if m is None:
        return False
    verb = m.group(1)
    return verb is None or verb.upper().decode() in COMMANDS or verb.upper().decode() in HTTP_METHODS


def _redact_http(text: str, verb: str, arg_start: int) -> str:
    """Tickets in an HTTP request target, credential headers, secret XML elements: by position."""
    if verb in HTTP_METHODS and arg_start < len(text):
        rest = text[arg_start:]
        target, sep, tail = rest.partition(" ")
        return text[:arg_start] + redact_target(target) + sep + tail
    m = _HEADER_RE.match(text)
    if m and m.group(1).lower() in CREDENTIAL_HEADERS and m.end() < len(text):
        return text[:m.end()] + REDACTED
    if "<" in text:
        return _XML_SECRET_RE.sub(lambda x: x.group(1) + REDACTED, text)
    return text


class LineBuffer:
    """CRLF line splitter for one direction; remembers where each line started.

    A line longer than :data:`MAX_LINE` is cut there and the rest of it, up to its newline, is
    swallowed: starting a new "line" inside it would show the tail of a long PASS argument as a
    line of its own.  After bytes went missing (:meth:`gap`) the first bytes may be the tail of a
    line whose start was lost; they are swallowed the same way unless they begin like a command
    or a reply (``discard`` forces it: the cut line carried a secret)."""

    __slots__ = ("buf", "ts", "frame", "overlong", "skipping", "judge", "skipped", "gap_skip", "resyncs")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ts = 0.0
        self.frame = 0
        self.overlong = 0
        self.skipping: str | None = None  # "overlong" | "gap": dropping bytes up to the next newline
        self.judge = False  # the next bytes follow a gap: a new line, or the tail of a lost one?
        self.skipped = 0  # bytes swallowed so far (tails of overlong lines and of lines cut by gaps)
        self.gap_skip = 0  # bytes swallowed since the last gap
        self.resyncs: list[int] = []  # bytes swallowed after each gap, once its newline came

    def gap(self, discard: bool = False) -> None:
        """Bytes are missing here: drop what was held of the cut line (the caller took it)."""
        self.buf.clear()
        self.gap_skip = 0
        if self.skipping or discard:
            self.skipping, self.judge = "gap", False
        else:
            self.judge = True

    def feed(self, data: bytes, ts: float, frame: int) -> list[tuple[bytes, float, int, bool]]:
        """Return complete lines as (raw bytes without CRLF, ts, frame, truncated)."""
        out = []
        start = 0
        n = len(data)
        while start < n:
            if self.judge:
                self.judge = False
                if not starts_like_line(data[start:start + 32]):
                    self.skipping = "gap"
            nl = data.find(b"\n", start)
            if self.skipping:
                stop = n if nl < 0 else nl + 1
                self.skipped += stop - start
                if self.skipping == "gap":
                    self.gap_skip += stop - start
                if nl < 0:
                    break
                if self.skipping == "gap":
                    self.resyncs.append(self.gap_skip)
                self.skipping = None
                start = stop
                continue
            if not self.buf:
                self.ts, self.frame = ts, frame
            end = n if nl < 0 else nl
            room = MAX_LINE - len(self.buf)
            if end - start > room or (nl < 0 and end - start == room):
                # too long: cut at MAX_LINE and swallow the rest of this line
                self.buf += data[start:start + room]
                self.overlong += 1
                out.append((bytes(self.buf).rstrip(b"\r"), self.ts, self.frame, True))
                self.buf.clear()
                self.skipping = "overlong"
                start += room
                continue
            self.buf += data[start:end]
            if nl < 0:
                break
            out.append((bytes(self.buf).rstrip(b"\r"), self.ts, self.frame, False))
            self.buf.clear()
            start = nl + 1
        return out

    @property
    def pending(self) -> bytes:
        return bytes(self.buf)


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


_LINE_START = re.compile(rb"^(?:\d{3}[ -]|[A-Z][A-Z_]{2,15}(?: |\r?\n|$))")


def looks_like_line(data: bytes) -> bool:
    """An authd command (``VERB ...``) or reply (``NNN ...``), or printable ASCII up to a
    newline, rather than binary.  A verb or code at the start is enough: a hostile line
    full of escape sequences is still a line to report (escaped), not binary."""
    head = data[:64]
    if not head:
        return False
    if _LINE_START.match(head):
        return True
    end = head.find(b"\n")
    body = head if end < 0 else head[:end]
    return all(32 <= c < 127 or c in (9, 13) for c in body)
