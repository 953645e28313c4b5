"""The size grammar of authd lines: size models per token, dialogue templates per feature.

Every number comes from a line's fixed text plus its argument (protocol.md §3.1, §3.4): e.g.
``USER <name>`` is 7 + the name and its ``331`` echo 29 + the same name; ``530 Login incorrect.``
is 22. Templates list what each feature's dialogue says, in order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

MAX_RECORD = 16384
MAX_LINE = 1016  # authd's own line cap (protocol.md §3.1)
PER_RECORD_TOKENS = 3  # lines one record may carry (pipelined writes)
GARBAGE = math.log(0.02)  # a record no line of the template explains
MISSING_REPLY = math.log(0.25)  # a command left unanswered at the end (cut short, hung up)
SKIPPED_REPLY = math.log(0.02)  # ... or in the middle
CONTINUED = math.log(0.5)  # an HTTP message continues in the next record of the same run
SHARED_RECORD = math.log(0.05)  # one more line in the same record: authd peers write a line at a time
BAND = 12  # server alignment: replies explained may run this far ahead of or behind the records
MAX_TICKETS = 4  # TLS 1.3 NewSessionTickets before the first reply
MAX_OBS = 400  # records of TLS #1 decoded (a longer brute force is still a brute force)


# -- sizes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Size:
    """A line's plaintext size: exact values (``p_exact`` of the mass) else a range.

    ``log`` makes the range scale-free (log-uniform): for messages with no useful bound.
    """

    lo: int
    hi: int
    exact: tuple[int, ...] = ()
    p_exact: float = 0.0
    log: bool = False

    def __post_init__(self) -> None:  # the hash a frozen dataclass computes on every call, computed once
        object.__setattr__(self, "_hash", hash((self.lo, self.hi, self.exact, self.p_exact, self.log)))
        object.__setattr__(self, "bounds", (min((self.lo, *self.exact)), max((self.hi, *self.exact))))

    bounds: tuple[int, int] = field(init=False, repr=False, compare=False)  # no size outside has mass

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def mass(self, ol: int, oh: int) -> float:
        """Probability that the size falls in the observed interval [ol, oh]."""
        p = 0.0
        if self.exact:
            hits = sum(1 for v in self.exact if ol <= v <= oh)
            p += self.p_exact * hits / len(self.exact)
        rest = 1.0 - self.p_exact if self.exact else 1.0
        lo, hi = max(ol, self.lo), min(oh, self.hi)
        if rest > 0 and lo <= hi:
            if self.log:
                a, b = max(self.lo, 1), self.hi + 1
                p += rest * math.log((hi + 1) / max(lo, 1)) / math.log(b / a)
            else:
                p += rest * (hi - lo + 1) / (self.hi - self.lo + 1)
        return p

    def shifted(self, by: int) -> "Size":
        return Size(self.lo + by, self.hi + by, tuple(v + by for v in self.exact), self.p_exact, self.log)


ANY = Size(1, MAX_RECORD, log=True)


def _loglik(sizes, ol: int, oh: int) -> float:
    return _loglik_cached(tuple(sizes), ol, oh)


@functools.lru_cache(maxsize=65536)
def _loglik_cached(sizes: tuple, ol: int, oh: int) -> float:
    """log P(sum of the lines' sizes in [ol, oh]); sums of several free sizes are approximated
    by one uniform range over their total span (a pipelined record)."""
    if len(sizes) == 1:
        p = sizes[0].mass(ol, oh)
    else:
        free = [s for s in sizes if not (s.exact and s.p_exact >= 1.0)]
        fixed = sum(s.exact[0] for s in sizes if s not in free)
        if not free:
            p = 1.0 if ol <= fixed <= oh else 0.0
        elif len(free) == 1:
            p = _shifted(free[0], fixed).mass(ol, oh)
        else:  # Size(lo, hi).mass(ol, oh), without making the Size
            lo, hi = fixed + sum(s.lo for s in free), fixed + sum(s.hi for s in free)
            a, b = max(ol, lo), min(oh, hi)
            p = 1.0 * (b - a + 1) / (hi - lo + 1) if a <= b else 0.0
    return math.log(p) if p > 0 else -math.inf


@functools.lru_cache(maxsize=4096)
def _shifted(size: Size, by: int) -> Size:
    return size.shifted(by)


# -- the grammar ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Tok:
    """One line type.  ``fixed`` + an argument of ``arg`` length is the line's size; ``tie``
    names the argument a later reply echoes; ``echo`` makes a reply's size fixed + that
    argument's length (with probability ``p_echo``, else ``other``)."""

    name: str
    text: str
    size: Size
    fixed: int = 0
    tie: str | None = None
    echo: str | None = None
    p_echo: float = 0.85
    other: Size | None = None
    split: bool = False  # may span several records (HTTP messages)
    replies: tuple["Tok", ...] = ()  # a client line: the server's possible answers; () = none


def _arg(fixed: int, lo: int, hi: int) -> Size:
    return Size(fixed + lo, fixed + hi, log=True)


R331 = Tok("331", "331 Password required for <name>.", _arg(29, 1, 256), fixed=29, echo="user",
           other=Size(8, 300))
R230 = Tok("230", "230 User <name> logged in.", _arg(22, 1, 256), fixed=22, echo="user", other=Size(8, 300))
R530 = Tok("530", "530 Login incorrect.", Size(6, 200, exact=(22, 37, 38), p_exact=0.8))
R200TP = Tok("200tp", "200 <certificate thumbprint>", Size(6, 200, exact=(65, 101), p_exact=0.95))
R200CONNECT = Tok("200connect", "200 Connect <vmx path>", Size(20, MAX_LINE), fixed=14, echo="path", p_echo=0.9,
                  other=Size(20, MAX_LINE))
RERR = Tok("5xx", "5xx <error>", Size(6, 200))
RBANNER = Tok("220", "220 VMware Authentication Daemon Version ... (greeting re-sent)", Size(47, 200))
R200HA = Tok("200ha", "200 Connect ha-nfc[ssl]", Size(6, 100, exact=(20, 23), p_exact=0.85))
RVMX = Tok("200vmx", "200 <reply> (VMXARGS model)", Size(6, MAX_LINE))
HTTP_RESP = Tok("http_resp", "HTTP/1.1 response (SOAP envelope)", Size(60, 1 << 24, log=True), split=True)
TICKET = Tok("ticket", "TLS 1.3 NewSessionTicket", Size(18, 4096, log=True))

USER = Tok("USER", "USER <name>", _arg(7, 1, 256), fixed=7, tie="user", replies=(R331,))
USER_TICKET = Tok("USER", "USER <ticket>", _arg(7, 8, 256), fixed=7, tie="user", replies=(R331,))
PASS = Tok("PASS", "PASS <password>", _arg(7, 1, 256), replies=(R230, R530))
PASS_OK = Tok("PASS", "PASS <ticket>", _arg(7, 8, 256), replies=(R230,))
PASS_ACCEPTED = Tok("PASS", "PASS <password>", _arg(7, 1, 256), replies=(R230,))
THUMB16 = Tok("THUMBPRINT", "THUMBPRINT <16-char token>", Size(29, 29, exact=(29,), p_exact=1.0), replies=(R200TP,))
THUMB_PLAIN = Tok("THUMBPRINT", "THUMBPRINT[_SHA2] PlainText", Size(22, 27, exact=(22, 27), p_exact=1.0),
                  replies=(R200TP,))
CONNECT = Tok("CONNECT", "CONNECT <vmx path> mks", Size(20, MAX_LINE), fixed=14, tie="path",
              replies=(R200CONNECT, RERR))
SESSION = Tok("SESSION", "SESSION <session id>", _arg(10, 8, 128))
SESSION_BANNER = Tok("SESSION+BANNER", "SESSION <session id> + BANNER", _arg(18, 8, 128), replies=(RBANNER,))
BANNER_CMD = Tok("BANNER", "BANNER", Size(8, 9, exact=(8, 9), p_exact=1.0), replies=(RBANNER,))
THUMB_NFC = Tok("THUMBPRINT", "THUMBPRINT <16-char token> | THUMBPRINT[_SHA2] PlainText",
                Size(22, 29, exact=(22, 27, 29), p_exact=1.0), replies=(R200TP,))
PROXY = Tok("PROXY", "PROXY <nfc service>", Size(9, 72, exact=(11, 14, 16, 19), p_exact=0.8), replies=(R200HA, RERR))
VMXCMD = Tok("CONNECT_ARGV", "CONNECT_ARGV <vmx> <args> (VMXARGS model)", Size(14, MAX_LINE), replies=(RVMX,))
HTTP_REQ = Tok("http_req", "HTTP request (SOAP envelope)", Size(120, 1 << 24, log=True), split=True,
               replies=(HTTP_RESP,))


@dataclass(frozen=True)
class Slot:
    """Consecutive lines of a template: ``group`` repeated between ``lo`` and ``hi`` times."""

    group: tuple[Tok, ...]
    lo: int = 1
    hi: int = 1  # 0 = unbounded
    p: float = 0.5  # optional slot: P(present); repeated slot: P(one more round)


@dataclass(frozen=True)
class Template:
    label: str
    name: str
    slots: tuple[Slot, ...]
    required: int  # index of the slot whose first line must have been sent for this label
    handoff: str  # "mks" | "nfc" | "none": what may follow TLS #1
    model: bool = False  # no public wire definition (protocol.md §6): the lab's model


LOGIN = (USER, PASS)
TEMPLATES = (
    Template("NONE", "login attempts", (Slot(LOGIN, 0, 0, p=0.7), Slot((USER,), 0, 1, p=0.2)), required=0,
             handoff="none"),
    Template("MKS", "MKS console set-up",
             (Slot((USER_TICKET, PASS_OK)), Slot((THUMB16,), 0, 1, p=0.9), Slot((CONNECT,))),
             required=2, handoff="mks"),
    Template("NFC", "NFC set-up (VDDK)", (Slot((SESSION_BANNER,)), Slot((THUMB_PLAIN,), 0, 1, p=0.8), Slot((PROXY,))),
             required=2, handoff="nfc"),
    Template("NFC", "NFC set-up (VDDK, SESSION and BANNER written apart)",
             (Slot((SESSION, BANNER_CMD)), Slot((THUMB_PLAIN,), 0, 1, p=0.8), Slot((PROXY,))), required=2, handoff="nfc"),
    Template("NFC", "NFC set-up (nfclib / photon)",
             (Slot((SESSION,)), Slot((THUMB_NFC,), 0, 1, p=0.8), Slot((PROXY,))), required=2, handoff="nfc"),
    Template("NFC", "NFC set-up after a login", (Slot((USER_TICKET, PASS_OK)), Slot((THUMB_PLAIN,), 0, 1, p=0.8),
                                                 Slot((PROXY,))), required=2, handoff="nfc"),
    Template("SOAP", "login, then SOAP over HTTP", (Slot((USER, PASS_ACCEPTED), 0, 1, p=0.8), Slot((HTTP_REQ,), 1, 0, p=0.8)),
             required=1, handoff="none", model=True),
    Template("VMXARGS", "login, then one VMXARGS command", (Slot((USER, PASS_ACCEPTED)), Slot((VMXCMD,))),
             required=1, handoff="none", model=True),
)

# what follows TLS #1: P(observed kind | template's hand-off), kinds "tls2" | "clear" | "none"
HANDOFF = {
    "mks": {"tls2": 0.85, "clear": 0.001, "none": 0.15},
    "nfc": {"tls2": 0.45, "clear": 0.45, "none": 0.1},
    "none": {"tls2": 0.01, "clear": 0.01, "none": 0.98},
}
MKS_TOKEN = Size(1, 64, exact=(16,), p_exact=0.85)  # the 16-byte client token, first data of TLS #2
NFC_FIRST = Size(1, MAX_RECORD, exact=(264,), p_exact=0.7, log=True)  # a 264-byte NFC message
FIRST_AFTER = {"mks": MKS_TOKEN, "nfc": NFC_FIRST}


