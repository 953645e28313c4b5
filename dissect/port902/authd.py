"""vmware-authd control channel: banner grammar and command/reply lines (stage 3a).

authd is FTP-like: the server greets with ``220 VMware Authentication Daemon
Version x.y[: SSL Required][, capability ...]\\r\\n`` (protocol.md §2), then commands
(``USER``, ``PASS``, ``SESSION``, ``THUMBPRINT``, ``CONNECT``, ``PROXY`` ...) and
``NNN text`` replies follow, one per CRLF-terminated line (§3).  On SSL daemons only
the banner is in clear; Workstation's 912 and old 1.0 daemons show everything.

Parsing here is direction-aware (client lines are commands, server lines are
replies) and incremental: :class:`LineBuffer` takes bytes in arbitrary chunks and
hands back complete lines with the time and frame where each line started.
Credentials never leave this module unredacted unless asked: ``PASS`` arguments,
tickets in ``USER``/``SESSION`` and every later echo of them are replaced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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


class LineBuffer:
    """CRLF line splitter for one direction; remembers where each line started."""

    __slots__ = ("buf", "ts", "frame", "overlong")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ts = 0.0
        self.frame = 0
        self.overlong = 0

    def feed(self, data: bytes, ts: float, frame: int) -> list[tuple[bytes, float, int, bool]]:
        """Return complete lines as (raw bytes without CRLF, ts, frame, truncated)."""
        out = []
        start = 0
        n = len(data)
        while start < n:
            if not self.buf:
                self.ts, self.frame = ts, frame
            nl = data.find(b"\n", start)
            if nl < 0:
                room = MAX_LINE - len(self.buf)
                self.buf += data[start:start + max(room, 0)]
                if len(self.buf) >= MAX_LINE:
                    self.overlong += 1
                    out.append((bytes(self.buf), self.ts, self.frame, True))
                    self.buf.clear()
                    # the rest of this overlong line up to the next newline is dropped
                break
            self.buf += data[start:nl]
            raw = bytes(self.buf[:MAX_LINE]).rstrip(b"\r")
            out.append((raw, self.ts, self.frame, len(self.buf) > MAX_LINE))
            self.buf.clear()
            start = nl + 1
        return out

    @property
    def pending(self) -> bytes:
        return bytes(self.buf)


@dataclass
class Dialogue:
    """The visible authd conversation of one connection and what it tells."""

    show_secrets: bool = False
    lines: list[Line] = field(default_factory=list)
    user: str | None = None
    login_attempts: int = 0
    logins_ok: int = 0
    logins_failed: int = 0
    connect_target: str | None = None  # CONNECT <vmx> / PROXY <service>
    connect_kind: str | None = None  # "mks" | "proxy" | "vmxargs"
    connect_reply: str | None = None  # text of the 200 Connect reply
    connect_ok: bool | None = None
    commands: list[str] = field(default_factory=list)  # verbs in order (feature evidence)
    _secrets: set[str] = field(default_factory=set)
    _awaiting: str | None = None

    def _redact(self, text: str) -> str:
        if self.show_secrets:
            return text
        for s in sorted(self._secrets, key=len, reverse=True):
            if s:
                text = text.replace(s, REDACTED)
        return text

    def client_line(self, raw: bytes, ts: float, frame: int, truncated: bool = False) -> Line:
        text = raw.decode("latin-1")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        if verb not in COMMANDS:
            verb_out = None
        else:
            verb_out = verb
            self.commands.append(verb)
        if verb in ("PASS", "XPAS") and arg:
            self._secrets.add(arg)
        elif verb in ("USER", "SESSION", "SESSIONID") and arg and (_TICKET_RE.match(arg) or verb != "USER"):
            self._secrets.add(arg)
        if verb == "USER":
            self.user = self._redact(arg) or None
            self._awaiting = "USER"
        elif verb in ("PASS", "XPAS"):
            self.login_attempts += 1
            self._awaiting = "PASS"
        elif verb in ("CONNECT", "PROXY") or verb.startswith("CONNECT_"):
            target, _, service = arg.rpartition(" ")
            if verb == "CONNECT" and service.lower() == "mks":  # CONNECT <vmx path> mks
                kind = "mks"
            else:
                target = arg
                kind = "proxy" if verb == "PROXY" else "vmxargs" if verb.startswith("CONNECT_") else "connect"
            self.connect_target = self._redact(target)
            self.connect_kind = kind
            self._awaiting = "CONNECT"
        else:
            self._awaiting = verb or None
        line = Line(ts, frame, True, self._redact(text), verb=verb_out, truncated=truncated)
        self.lines.append(line)
        return line

    def server_line(self, raw: bytes, ts: float, frame: int, truncated: bool = False) -> Line:
        text = raw.decode("latin-1")
        head = text[:3]
        code = int(head) if len(head) == 3 and head.isascii() and head.isdigit() else None  # "4³²" is isdigit() too
        if self._awaiting == "PASS" and code in (230, 530):
            if code == 230:
                self.logins_ok += 1
            else:
                self.logins_failed += 1
            self._awaiting = None
        elif self._awaiting == "CONNECT" and code is not None:
            self.connect_ok = code == 200
            self.connect_reply = self._redact(text)
            self._awaiting = None
        line = Line(ts, frame, False, self._redact(text), code=code, truncated=truncated)
        self.lines.append(line)
        return line

    @property
    def login_outcome(self) -> str:
        """accepted / rejected / none — did a visible PASS earn a 230?"""
        if self.logins_ok:
            return "accepted"
        if self.logins_failed:
            return "rejected"
        return "none"


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
