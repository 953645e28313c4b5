"""vmware-authd control channel, the grammar (stage 3a): banner, commands, reply codes, lines.

authd is FTP-like: the server greets with ``220 VMware Authentication Daemon
Version x.y[: SSL Required][, capability ...]\\r\\n`` (protocol.md §2), then commands
(``USER``, ``PASS``, ``SESSION``, ``THUMBPRINT``, ``CONNECT``, ``PROXY`` ...) and
``NNN text`` replies follow, one per CRLF-terminated line (§3).  On SSL daemons only
the banner is in clear; Workstation's 912 and old 1.0 daemons show everything.

:class:`LineBuffer` takes bytes in arbitrary chunks and hands back complete lines with the
time and frame where each line started.  Where secrets sit in a line is ``redact.py``; the
conversation (replies matched to commands, logins) is ``dialogue.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..http import HTTP_METHODS

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


_SEP = "\\s\\x00-\\x1f\\x7f"  # whitespace and control characters end a verb (PASS<TAB>x is PASS x)
_COMMAND_RE = re.compile(f"[{_SEP}]*([^{_SEP}]*)\\s*", re.S)  # the argument starts after blanks only
_LINE_HEAD_RE = re.compile(rb"(?:\d{3}[ -]|HTTP/\d|([A-Za-z_]{2,20})(?:[ \t]|\r?\n|\r?$))")


def split_command(text: str) -> tuple[str, int]:
    """A client line's verb (upper case) and where its argument starts.  Whitespace or a control
    character ends the verb (``PASS<TAB>x`` and ``PASS\\0x`` are PASS, as a C parser stopping at
    the first blank would see them); blanks after it are skipped, a control character is kept
    as the start of the argument."""
    m = _COMMAND_RE.match(text)
    assert m is not None  # every part of the pattern is optional: it matches any text
    return m.group(1).upper(), m.end()


def starts_like_line(head: bytes) -> bool:
    """Do these bytes (first of a line whose start is not certain) begin a command or a reply?"""
    m = _LINE_HEAD_RE.match(head)
    if m is None:
        return False
    verb = m.group(1)
    return verb is None or verb.upper().decode() in COMMANDS or verb.upper().decode() in HTTP_METHODS


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
