"""The authd dialogue inside TLS #1, decoded from record sizes (stage 5a).

authd writes one line per TLS record (protocol.md §3.1, §4.2, §5.3), and the record layer
stays readable: with the cipher's overhead taken off (:func:`plaintext_interval`), the
sequence of client and server record sizes is a sequence of line lengths.  Every authd line
is fixed text plus a variable argument, so each line type has a size model derived from its
grammar, not from captures:

* ``USER <name>\\r\\n`` is 7 + len(name); the answer ``331 Password required for <name>.\\r\\n``
  is 29 + len(name) and ``230 User <name> logged in.\\r\\n`` 22 + len(name) — the server echoes
  the argument, so the reply's size is *tied* to the command's (§3.4, §3.5);
* ``530 Login incorrect.\\r\\n`` is 22, ``530 Please login with USER and PASS.\\r\\n`` 38 (37);
* ``THUMBPRINT <16 chars>\\r\\n`` is 29, ``200 <SHA-1 colon hex>\\r\\n`` 65, SHA-256 101 (§4.2);
* ``CONNECT <vmx> mks\\r\\n`` is 14 + len(vmx) and ``200 Connect <vmx>\\r\\n`` exactly as long;
* ``PROXY vpxa-nfc|vpxa-nfcssl|nfc|nfcssl`` 16/19/11/14, ``200 Connect ha-nfc[ssl]`` 20/23 (§5.3);
* VDDK's ``BANNER \\r\\n`` (9) is answered by the 47–200 byte greeting (§2.2);
* an HTTP/SOAP request or response has no useful bound: a scale-free (log-uniform) size.

Each feature is a *template* of exchanges (a login, the MKS set-up, three NFC set-ups, SOAP,
the VMXARGS model, login attempts only).  :func:`decode` aligns the observed records with
every template — a client may write several lines in one record (pipelining), a session may
be cut short anywhere, TLS 1.3 servers send NewSessionTickets (RFC 8446 §4.6.1) before their
first reply, a record nothing explains costs a penalty instead of breaking the parse — and
scores each alignment as a log-likelihood.  The best template per label competes with the
others; the winner's likelihood against the runner-up is the confidence.  The alignment is
reported line by line (:class:`Step`), so every verdict can be read back as a dialogue.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from ..proto import tls as tlsmod

C2S, S2C = 0, 1
MAX_RECORD = 16384
MAX_LINE = 1016  # authd's own line cap (protocol.md §3.1)
PER_RECORD_TOKENS = 3  # lines one record may carry (pipelined writes)
GARBAGE = math.log(0.02)  # a record no line of the template explains
MISSING_REPLY = math.log(0.25)  # a command left unanswered at the end (cut short, hung up)
SKIPPED_REPLY = math.log(0.02)  # ... or in the middle
CONTINUED = math.log(0.5)  # an HTTP message continues in the next record of the same run
SHARED_RECORD = math.log(0.05)
BAND = 12  # server alignment: replies explained may run this far ahead of or behind the records
MAX_TICKETS = 4  # TLS 1.3 NewSessionTickets before the first reply
MAX_OBS = 400  # records of TLS #1 decoded (a longer brute force is still a brute force)  # one more line in the same record: authd peers write a line at a time


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
            p = free[0].shifted(fixed).mass(ol, oh)
        else:
            lo, hi = fixed + sum(s.lo for s in free), fixed + sum(s.hi for s in free)
            p = Size(lo, hi).mass(ol, oh)
    return math.log(p) if p > 0 else -math.inf


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


# -- observations ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Obs:
    """One TLS #1 application-data record: direction, plaintext size interval, where."""

    ts: float
    frame: int
    direction: int
    lo: int
    hi: int
    run: int = 0  # records of the other direction seen before this one: same run = written back to back

    @property
    def size(self) -> str:
        return f"{self.lo}" if self.lo == self.hi else f"{self.lo}-{self.hi}"


def plaintext_interval(length: int, hs) -> tuple[int, int]:
    """The plaintext bytes a record of ``length`` can carry under ``hs``'s cipher: exact for
    AEAD suites, a block's width for CBC (padding), a wide band when the cipher is unknown."""
    sh = getattr(hs, "server_hello", None)
    if sh is None:
        return max(0, length - 64), max(0, length - 16)
    if sh.selected_version >= 0x0304:
        return (max(0, length - 17),) * 2
    name = tlsmod.cipher_name(sh.cipher_suite)
    if "GCM" in name or "CCM" in name:
        tag = 8 if name.endswith("CCM_8") else 16
        return (max(0, length - 8 - tag),) * 2
    if "CHACHA20" in name:
        return (max(0, length - 16),) * 2
    block = 8 if "DES" in name or "IDEA" in name else 16
    mac = 48 if name.endswith("SHA384") else 32 if name.endswith("SHA256") else 16 if name.endswith("MD5") else 20
    iv = block if sh.selected_version >= 0x0302 else 0
    return max(0, length - iv - mac - block), max(0, length - iv - mac - 1)


def tls1_observations(rec, hs_index: int = 1) -> tuple[list[Obs], bool]:
    """TLS #1's (or handshake ``hs_index``'s) application data as observations (TLS 1.3's encrypted handshake and the client's
    Finished left out; TLS 1.0's empty CBC fragments left out); and whether it was TLS 1.3."""
    hs = next((h for h in rec.handshakes if h.index == hs_index), None)
    sh = getattr(hs, "server_hello", None)
    tls13 = sh is not None and sh.selected_version >= 0x0304
    raw = [(ts, fr, d, ln) for ts, fr, d, ct, ln, h in rec.records() if ct == 23 and h == hs_index]
    if tls13:
        first_client = next((i for i, r in enumerate(raw) if r[2] == C2S), None)
        if first_client is None:
            return [], True
        # before the client's Finished the server's app-data records are its encrypted handshake
        raw = raw[first_client + 1:]
    out = []
    for i, (ts, fr, d, ln) in enumerate(raw):
        lo, hi = plaintext_interval(ln, hs)
        if lo == 0 and sh is not None and sh.selected_version <= 0x0301 and i + 1 < len(raw) \
                and raw[i + 1][2] == d and raw[i + 1][1] == fr and ln <= 48:
            continue  # an empty fragment before a CBC record (SSL 3 / TLS 1.0 countermeasure)
        out.append(Obs(ts, fr, d, lo, hi))
    if tls13:  # close_notify travels as a 2-byte application-data record
        for d in (C2S, S2C):
            idx = [i for i, o in enumerate(out) if o.direction == d]
            if idx and out[idx[-1]].hi <= 2:
                out.pop(idx[-1])
    seen = [0, 0]
    runs = []
    for o in out:
        runs.append(Obs(o.ts, o.frame, o.direction, o.lo, o.hi, seen[1 - o.direction]))
        seen[o.direction] += 1
    return runs, tls13


# -- alignment -------------------------------------------------------------------------------

@dataclass
class Step:
    """One record, read as a line (or lines) of the winning template."""

    obs: Obs
    tokens: tuple[Tok, ...]  # () = not explained by the template
    note: str = ""

    def to_dict(self, alternatives: list[str] | None = None) -> dict:
        return {"direction": "client" if self.obs.direction == C2S else "server", "frame": self.obs.frame,
                "size": self.obs.size, "line": " + ".join(t.text for t in self.tokens) or "(unexplained)",
                "note": self.note or None, "alternatives": alternatives or []}


@dataclass
class Parse:
    template: Template
    loglik: float
    steps: list[Step] = field(default_factory=list)
    commands: int = 0  # client lines explained
    logins: list[str] = field(default_factory=list)  # per PASS: accepted | rejected | ambiguous | unanswered
    handoff: str = "none"


def anchored_share(parse: "Parse") -> tuple[float, float]:
    """(share of server records read as replies whose size the grammar pins down — an exact
    size such as '530 Login incorrect.' or an echo of the command's argument —, share of records
    carrying more than one line).  Loose readings of traffic that is not authd score low on the
    first and high on the second."""
    server = [st for st in parse.steps if st.obs.direction == S2C and st.tokens != (TICKET,)]
    shared = sum(1 for st in parse.steps if len(st.tokens) > 1)
    anchored = 0
    last_client = None
    for st in parse.steps:
        if st.obs.direction == C2S:
            last_client = st
            continue
        if len(st.tokens) != 1:
            continue
        tok = st.tokens[0]
        if tok.size.exact and any(st.obs.lo <= v <= st.obs.hi for v in tok.size.exact):
            anchored += 1
        elif tok.echo and last_client is not None and len(last_client.tokens) == 1:
            ctok = last_client.tokens[-1]
            arg = (last_client.obs.lo - ctok.fixed, last_client.obs.hi - ctok.fixed)
            if ctok.tie == tok.echo and st.obs.lo <= tok.fixed + arg[1] and tok.fixed + arg[0] <= st.obs.hi:
                anchored += 1
    return (anchored / len(server) if server else 0.0), (shared / len(parse.steps) if parse.steps else 0.0)


def _nfa(t: Template):
    """Template -> states (slot, position); start edges and successor edges with their
    log-probabilities: taking an optional slot costs log p, skipping it log (1 - p), one more
    round of a repeated slot log p, leaving it log (1 - p)."""
    states = [(si, pi) for si, s in enumerate(t.slots) for pi in range(len(s.group))]

    def entries(si: int, cost: float = 0.0) -> list[tuple[tuple[int, int], float]]:
        out = []
        while si < len(t.slots):
            s = t.slots[si]
            if s.lo > 0:
                out.append(((si, 0), cost))
                break
            out.append(((si, 0), cost + math.log(s.p)))
            cost += math.log(1 - s.p)
            si += 1
        return out

    succ = {}
    for si, pi in states:
        s = t.slots[si]
        if pi + 1 < len(s.group):
            succ[(si, pi)] = [((si, pi + 1), 0.0)]
        elif s.hi == 0:
            succ[(si, pi)] = [((si, 0), math.log(s.p))] + entries(si + 1, math.log(1 - s.p))
        else:
            succ[(si, pi)] = entries(si + 1)
    return entries(0), succ


def _client_align(t: Template, obs: list[Obs], midway: bool = False):
    """Viterbi over client records: best[(state)] after each record; returns (loglik, path) or None.
    path: per record, the list of (state, token) it carried ([] = unexplained).  ``midway``: the
    capture began inside the dialogue, so the first line seen may be any line of the template."""
    start, succ = _nfa(t)
    if midway:
        states = list(succ)
        start = [(st, -math.log(len(states))) for st in states]
    START = (-1, -1)
    best = {START: (0.0, None)}
    history = []
    prev = None
    for o in obs:
        nxt: dict = {}

        def offer(state, score, back):
            if score > nxt.get(state, (-math.inf,))[0]:
                nxt[state] = (score, back)

        garbage = GARBAGE + _loglik((ANY,), o.lo, o.hi)
        for s, (score, _) in best.items():
            offer(s, score + garbage, (s, ()))
            if s != START and prev is not None and prev.run == o.run and t.slots[s[0]].group[s[1]].split:
                offer(s, score + CONTINUED, (s, "cont"))  # the same HTTP message, next record
            frontier = [(s, (), 0.0)]
            for _k in range(PER_RECORD_TOKENS):
                new = []
                for cur, toks, cost in frontier:
                    for ns, edge in (start if cur == START else succ[cur]):
                        tok = t.slots[ns[0]].group[ns[1]]
                        path = toks + ((ns, tok),)
                        ll = _loglik([tk.size for _, tk in path], o.lo, o.hi)
                        if ll > -math.inf:
                            offer(ns, score + cost + edge + ll, (s, path))
                        new.append((ns, path, cost + edge + SHARED_RECORD))
                frontier = new
        history.append(nxt)
        best = nxt
        prev = o
    ended = [(sc, s) for s, (sc, _) in best.items() if s != START and s[0] >= t.required]
    if not ended:
        return None
    score, state = max(ended)
    path = []
    for step in reversed(history):
        before, toks = step[state][1]
        path.append(toks if toks == "cont" else [tk for _, tk in toks])
        state = before
    path.reverse()
    return score, path


def _arg_of(tok: Tok, o: Obs, alone: bool) -> tuple[int, int] | None:
    if not alone or tok.tie is None:
        return None
    return o.lo - tok.fixed, o.hi - tok.fixed


def _reply_size(tok: Tok, key_values: dict) -> Size:
    """A reply's size model, with the echoed argument's length when the command's is known."""
    if tok.echo is None:
        return tok.size
    arg = key_values.get(tok.echo)
    if arg is None:
        return tok.size
    lo, hi = arg
    echo = Size(tok.fixed + lo, tok.fixed + hi)
    return _Mix(echo, tok.other or tok.size, tok.p_echo)


@dataclass(frozen=True, slots=True)
class _Mix:
    a: Size
    b: Size
    p: float

    def mass(self, ol: int, oh: int) -> float:
        return self.p * self.a.mass(ol, oh) + (1 - self.p) * self.b.mass(ol, oh)


def _server_align(replies: list, obs: list[Obs], tls13: bool):
    """Align server records with the expected replies (each: alternatives, earliest ts).
    Returns (loglik, per record (kind, reply indices, chosen tokens))."""
    n, m = len(obs), len(replies)
    NEG = -math.inf
    # best[j][i] = (score, back) after records < j explained replies < i; tickets only at i == 0.
    # Only a band of i around j is kept: one record answers about one command, so an alignment
    # that drifts further than BAND (unanswered commands, unexplained records) is not worth
    # following — and the cost stays linear in the records however long a brute force runs.
    best: list[dict] = [{} for _ in range(n + 1)]
    best[0][0] = (0.0, None)

    def offer(j, i, score, back):
        if score > best[j].get(i, (NEG,))[0]:
            best[j][i] = (score, back)

    # the band follows runs (records written back to back), not records: one long HTTP response
    # fills many records but answers one request
    unit, runs = [], 0
    for j, o in enumerate(obs):
        if j == 0 or o.run != obs[j - 1].run:
            runs += 1
        unit.append(runs - 1)
    for j in range(n):
        o = obs[j]
        garbage = GARBAGE + _loglik((ANY,), o.lo, o.hi)
        ticket = math.log(0.5) + _loglik((TICKET.size,), o.lo, o.hi)
        u = unit[j]
        for i in range(max(0, u - BAND - MAX_TICKETS), min(m, u + BAND + PER_RECORD_TOKENS * 2) + 1):
            score = best[j].get(i, (NEG,))[0]
            if score == NEG:
                continue
            offer(j + 1, i, score + garbage, (j, i, "garbage", ()))
            if tls13 and i == 0 and j < MAX_TICKETS:
                offer(j + 1, 0, score + ticket, (j, i, "ticket", ()))
            # skip an unanswered reply
            if i < m:
                offer(j, i + 1, score + SKIPPED_REPLY, (j, i, "skip", ()))
            # this record carries replies i..i+k-1
            for k in range(1, PER_RECORD_TOKENS + 1):
                if i + k > m or any(replies[i + x][1] > o.ts + 1e-6 for x in range(k)):
                    break
                options = [[]]
                for x in range(k):
                    options = [opt + [alt] for opt in options for alt in replies[i + x][0]]
                for opt in options:
                    sizes = [a[1] for a in opt]
                    ll = _mixed_loglik(sizes, o.lo, o.hi) + (k - 1) * SHARED_RECORD
                    if ll > NEG:
                        offer(j + 1, i + k, score + ll, (j, i, "reply", tuple(opt)))
            # a splittable reply spanning records j..e of one run
            if i < m and any(a[0].split for a in replies[i][0]) and replies[i][1] <= o.ts + 1e-6:
                lo = hi = 0
                for e in range(j, n):
                    if obs[e].run != o.run:
                        break
                    lo, hi = lo + obs[e].lo, hi + obs[e].hi
                    if e > j:
                        for alt in replies[i][0]:
                            if alt[0].split:
                                ll = _mixed_loglik([alt[1]], lo, hi)
                                if ll > NEG:
                                    offer(e + 1, i + 1, score + ll, (j, i, "span", (alt,), e))
    # end: replies not seen are missing (the session was cut or the server hung up)
    final = max(((sc + (m - i) * MISSING_REPLY, i) for i, (sc, _b) in best[n].items()), key=lambda x: x[0],
                default=(NEG, 0))
    score, i = final
    if score == NEG:
        return None
    out = [None] * n
    j = n
    while j > 0 or i > 0:
        back = best[j].get(i, (NEG, None))[1]
        if back is None:
            break
        pj, pi, kind, opt = back[:4]
        if kind == "span":
            for e in range(pj, back[4] + 1):
                out[e] = ("span", (pi,), opt)
        elif kind != "skip":
            out[pj] = (kind, tuple(range(pi, i)), opt)
        j, i = pj, pi
    return score, out, final[1]


def _mixed_loglik(sizes: list, ol: int, oh: int) -> float:
    if len(sizes) == 1:
        if isinstance(sizes[0], Size):
            return _loglik_cached((sizes[0],), ol, oh)
        p = sizes[0].mass(ol, oh)
        return math.log(p) if p > 0 else -math.inf
    plain = [s.a if isinstance(s, _Mix) else s for s in sizes]
    return _loglik(plain, ol, oh)


def _align(t: Template, obs: list[Obs], tls13: bool, handoff: str, first_after: tuple[int, int] | None,
           midway: bool = False) -> Parse | None:
    client = [o for o in obs if o.direction == C2S]
    server = [o for o in obs if o.direction == S2C]
    got = _client_align(t, client, midway)
    if got is None:
        return None
    cscore, path = got
    # the replies the client's lines call for, in order, with the echoed arguments
    replies, known = [], {}
    owners = []  # reply index -> (client record index, token)
    for ci, (o, toks) in enumerate(zip(client, path)):
        if toks == "cont":  # the request goes on: its answer comes after this record
            if replies:
                replies[-1] = (replies[-1][0], o.ts)
            continue
        for tok in toks:
            arg = _arg_of(tok, o, len(toks) == 1)
            if tok.tie:
                known[tok.tie] = arg
            if tok.replies:
                replies.append(([(r, _reply_size(r, known)) for r in tok.replies], o.ts))
                owners.append((ci, tok))
    sgot = _server_align(replies, server, tls13)
    if sgot is None:
        return None
    sscore, sout, _answered = sgot
    p_handoff = HANDOFF[t.handoff][handoff]
    score = cscore + sscore + math.log(p_handoff)
    if first_after is not None and handoff == "tls2" and t.handoff in FIRST_AFTER:
        score += _loglik([FIRST_AFTER[t.handoff]], *first_after)
    elif first_after is not None and handoff == "tls2":
        score += _loglik([ANY], *first_after)
    parse = Parse(t, score, handoff=handoff)
    # steps in time order, and the outcome of each PASS
    chosen = {}
    for item in sout:
        if item and item[0] in ("reply", "span"):
            for idx, alt in zip(item[1], item[2]):
                chosen[idx] = alt[0]
    ci = si = 0
    for o in obs:
        if o.direction == C2S:
            if path[ci] == "cont":
                last = next(st for st in reversed(parse.steps) if st.obs.direction == C2S)
                parse.steps.append(Step(o, last.tokens, "continued"))
            else:
                toks = tuple(path[ci])
                parse.commands += len(toks)
                parse.steps.append(Step(o, toks))
            ci += 1
        else:
            item = sout[si]
            si += 1
            if item is None or item[0] == "garbage":
                parse.steps.append(Step(o, ()))
            elif item[0] == "ticket":
                parse.steps.append(Step(o, (TICKET,)))
            else:
                parse.steps.append(Step(o, tuple(a[0] for a in item[2]) if item[0] == "reply" else (item[2][0][0],),
                                        "continued" if item[0] == "span" and parse.steps and parse.steps[-1].tokens
                                        and parse.steps[-1].tokens[0] is item[2][0][0] else ""))
    for idx, (ci_, tok) in enumerate(owners):
        if tok.name != "PASS":
            continue
        alts = replies[idx][0]
        if idx not in chosen:
            parse.logins.append("unanswered")
            continue
        pick = chosen[idx]
        if len(alts) > 1:
            rec_item = next(it for it in sout if it and it[0] == "reply" and idx in it[1])
            if len(rec_item[1]) == 1:
                o = server[sout.index(rec_item)]
                p = {a[0].name: a[1].mass(o.lo, o.hi) for a in alts}
                hi_, lo_ = max(p.values()), min(p.values())
                if lo_ > 0 and hi_ / lo_ < 20:
                    parse.logins.append("ambiguous")
                    continue
        parse.logins.append("accepted" if pick.name == "230" else "rejected")
    return parse


@dataclass
class Decoded:
    """The decoder's answer: the best parse per label, ranked; the posterior of each label."""

    parses: list[Parse]
    posterior: dict[str, float]
    observations: int
    not_decoded: int = 0  # records past MAX_OBS

    @property
    def best(self) -> Parse | None:
        return self.parses[0] if self.parses else None

    def runner_up(self) -> Parse | None:
        best = self.best
        return next((p for p in self.parses[1:] if best is None or p.template.label != best.template.label), None)

    def inferred_dialogue(self) -> list[dict]:
        best, other = self.best, self.runner_up()
        if best is None:
            return []
        alt = {}
        if other is not None:
            for s in other.steps:
                alt[(s.obs.frame, s.obs.ts, s.obs.direction, s.obs.lo)] = \
                    f"{other.template.label}: " + (" + ".join(t.text for t in s.tokens) or "(unexplained)")
        out = []
        for s in best.steps:
            a = alt.get((s.obs.frame, s.obs.ts, s.obs.direction, s.obs.lo))
            mine = f"{best.template.label}: " + (" + ".join(t.text for t in s.tokens) or "(unexplained)")
            out.append(s.to_dict([a] if a and a != mine else []))
        return out


UNKNOWN_PRIOR = math.log(0.05)


def decode(rec, handoff: str, first_after: tuple[int, int] | None = None) -> Decoded | None:
    """Decode TLS #1 of ``rec``; ``handoff`` is what followed it ("tls2", "clear", "none") and
    ``first_after`` the plaintext interval of the client's first record in TLS #2."""
    obs, tls13 = tls1_observations(rec)
    total = len(obs)
    obs = obs[:MAX_OBS]
    if not any(o.direction == C2S for o in obs):
        return None
    # only the order of the records matters (a reply follows its command), not their times: the
    # decoding of a shape is computed once — a brute force of a thousand alike connections costs one
    shape = tuple((o.direction, o.lo, o.hi, o.run) for o in obs)
    core = _decode_shape(shape, tls13, handoff, first_after) if len(shape) <= CACHED_SHAPE \
        else _decode_shape.__wrapped__(shape, tls13, handoff, first_after)
    return _bind(core, obs, total)


def _bind(core: "Decoded", obs: list[Obs], total: int) -> "Decoded":
    """A decoding computed on a record shape, attached to the session's own records."""
    parses = [Parse(p.template, p.loglik, [Step(obs[i], st.tokens, st.note) for i, st in enumerate(p.steps)],
                    p.commands, list(p.logins), p.handoff) for p in core.parses]
    return Decoded(parses, dict(core.posterior), len(obs), total - len(obs))


CACHED_SHAPE = 64  # shapes up to this many records are remembered (LRU)

# A capture that began inside TLS #1 saw no ServerHello: the record overhead is a latent variable.
# Each hypothesis is (name, fixed bytes, block size) of a cipher family ESXi and its clients use.
OVERHEADS = (  # (name, explicit IV, MAC or tag, block size)
    ("AES-GCM (TLS 1.2)", 8, 16, 0), ("ChaCha20-Poly1305 (TLS 1.2)", 0, 16, 0), ("TLS 1.3 AEAD", 0, 17, 0),
    ("AES-CBC-SHA (TLS 1.1/1.2)", 16, 20, 16), ("AES-CBC-SHA256", 16, 32, 16), ("AES-CBC-SHA384", 16, 48, 16),
    ("AES-CBC-SHA (TLS 1.0)", 0, 20, 16),
)
MIDWAY_MIN_RECORDS = 4


def decode_midway(rec) -> tuple["Decoded", str] | None:
    """Decode application records seen before any handshake (a capture that began inside TLS #1):
    the template may be entered at any line, and the cipher's overhead is chosen among
    :data:`OVERHEADS` by likelihood.  Returns the decoding and the overhead's name, or None."""
    raw = [(ts, fr, d, ln) for ts, fr, d, ct, ln, h in rec.records() if ct == 23 and h == 0]
    raw = raw[:MAX_OBS]
    if len(raw) < MIDWAY_MIN_RECORDS or not any(d == C2S for _, _, d, _ in raw):
        return None
    best = None
    for name, iv, mac, block in OVERHEADS:
        if block and any((ln - iv) % block for _, _, _, ln in raw):
            continue  # a block cipher makes every record IV + whole blocks: this one cannot be it
        obs, seen = [], [0, 0]
        for ts, fr, d, ln in raw:
            lo, hi = (ln - iv - mac - block, ln - iv - mac - 1) if block else (ln - iv - mac, ln - iv - mac)
            if hi < 1:
                break
            obs.append(Obs(ts, fr, d, max(0, lo), hi, seen[1 - d]))
            seen[d] += 1
        else:
            shape = tuple((o.direction, o.lo, o.hi, o.run) for o in obs)
            core = _decode_shape(shape, False, "none", None, True) if len(shape) <= CACHED_SHAPE \
                else _decode_shape.__wrapped__(shape, False, "none", None, True)
            top = core.parses[0].loglik - math.log(len(OVERHEADS))
            if best is None or top > best[0]:
                best = (top, _bind(core, obs, len(obs)), name)
    return None if best is None else (best[1], best[2])


@functools.lru_cache(maxsize=1024)
def _decode_shape(shape: tuple, tls13: bool, handoff: str, first_after: tuple[int, int] | None,
                  midway: bool = False) -> Decoded:
    obs = [Obs(float(i), 0, d, lo, hi, run) for i, (d, lo, hi, run) in enumerate(shape)]
    parses = [p for t in TEMPLATES if (p := _align(t, obs, tls13, handoff, first_after, midway)) is not None]
    # the null model: every record unexplained
    null = sum(GARBAGE + _loglik([ANY], o.lo, o.hi) for o in obs) + UNKNOWN_PRIOR + math.log(1 / 3)
    by_label: dict[str, Parse] = {}
    for p in sorted(parses, key=lambda p: -p.loglik):
        by_label.setdefault(p.template.label, p)
    ranked = sorted(by_label.values(), key=lambda p: -p.loglik)
    scores = {p.template.label: p.loglik for p in ranked}
    scores["UNKNOWN"] = max(scores.get("UNKNOWN", -math.inf), null)
    top = max(scores.values())
    z = sum(math.exp(v - top) for v in scores.values())
    posterior = {k: math.exp(v - top) / z for k, v in scores.items()}
    if "UNKNOWN" not in by_label:  # the null model competes like any other label
        ranked.append(Parse(Template("UNKNOWN", "no template explains the records", (), 0, "none"), null,
                            [Step(o, ()) for o in obs]))
        ranked.sort(key=lambda p: -p.loglik)
    return Decoded(ranked, posterior, len(obs))


# -- words -------------------------------------------------------------------------------------

def describe(parse: Parse, limit: int = 12) -> str:
    """The parse as a compact dialogue: 'USER(~24) 331 PASS(~24) 530 ×3'."""
    items = []
    for s in parse.steps:
        if not s.tokens:
            items.append((f"?({s.obs.size})", s.obs.direction))
        elif s.tokens == (TICKET,):
            continue
        elif s.note == "continued":
            continue
        else:
            label = "+".join(t.name for t in s.tokens)
            if s.obs.direction == C2S or any(t.echo or t.split for t in s.tokens):
                label += f"(~{s.obs.size})"
            items.append((label, s.obs.direction))
    # compress repeats of a 4-item login attempt, a command and its reply, a single item;
    # a repeated unit starts with a client line
    out, i = [], 0
    while i < len(items):
        for width in (4, 2, 1):
            unit = items[i:i + width]
            if len(unit) < width or (width > 1 and unit[0][1] != C2S):
                continue
            reps = 1
            while items[i + reps * width:i + (reps + 1) * width] == unit:
                reps += 1
            if reps > 1:
                out.append(" ".join(u for u, _ in unit) + f" ×{reps}")
                i += reps * width
                break
        else:
            out.append(items[i][0])
            i += 1
    text = " ".join(out)
    return text if len(out) <= limit else " ".join(out[:limit]) + " …"


def login_summary(logins: list[str]) -> str:
    if not logins:
        return "no login"
    acc, rej = logins.count("accepted"), logins.count("rejected")
    amb, un = logins.count("ambiguous"), logins.count("unanswered")
    parts = []
    if acc:
        parts.append(f"{acc} accepted")
    if rej:
        parts.append(f"{rej} rejected")
    if amb:
        parts.append(f"{amb} undetermined (reply sizes fit both 230 and 530)")
    if un:
        parts.append(f"{un} unanswered")
    return f"{len(logins)} login attempt(s): " + ", ".join(parts)
