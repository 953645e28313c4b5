"""Aligning observations with a template: client Viterbi over an NFA, banded server alignment.

The most likely reading of the records under one template, with per-slot probabilities; pipelined
writes, garbage and missing replies have explicit costs (``grammar``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...net.flows import C2S, S2C
from .grammar import (
    ANY,
    BAND,
    CONTINUED,
    FIRST_AFTER,
    GARBAGE,
    HANDOFF,
    MAX_TICKETS,
    MISSING_REPLY,
    PER_RECORD_TOKENS,
    SHARED_RECORD,
    SKIPPED_REPLY,
    TICKET,
    Size,
    Template,
    Tok,
    _loglik,
    _loglik_cached,
)
from . import fastalign
from .observe import Obs

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


_EXPANSIONS: dict[tuple[int, bool], tuple] = {}  # (id(template), midway) -> (template, {state: expansions})


def _expansions(t: Template, midway: bool) -> dict:
    """For each NFA state: the lines one record may carry from there, in the order the Viterbi
    offers them -- (next state, path, cost so far, edge cost, the path's sizes) -- which depend
    on the template only, not on the records (worked out once per template)."""
    got = _EXPANSIONS.get((id(t), midway))
    if got is not None and got[0] is t:
        return got[1]
    start, succ = _nfa(t)
    if midway:
        states = list(succ)
        start = [(st, -math.log(len(states))) for st in states]
    out = {}
    for s in [_START, *succ]:
        exp = []
        frontier = [(s, (), 0.0)]
        for _k in range(PER_RECORD_TOKENS):
            new = []
            for cur, toks, cost in frontier:
                for ns, edge in (start if cur == _START else succ[cur]):
                    tok = t.slots[ns[0]].group[ns[1]]
                    path = toks + ((ns, tok),)
                    exp.append((ns, path, cost, edge, tuple(tk.size for _, tk in path)))
                    new.append((ns, path, cost + edge + SHARED_RECORD))
            frontier = new
        out[s] = exp
    if len(_EXPANSIONS) >= 64:  # only templates made on the fly (tests) come and go
        _EXPANSIONS.clear()
        _PATH_LL.clear()  # keyed by the ids of the paths' sizes: those may now be reused
    _EXPANSIONS[(id(t), midway)] = (t, out)
    return out


_START = (-1, -1)
# (id of an expansion's sizes, lo, hi) -> _loglik, over all sessions: a client record's size
# interval recurs from session to session, and the sizes tuples live as long as _EXPANSIONS
_PATH_LL: dict[tuple[int, int, int], float] = {}
MAX_PATH_LL = 1 << 18
_PER_SIZE: dict[tuple[int, int, int], float] = {}  # (kind, lo, hi) -> a record's garbage / ticket score


def _record_score(kind: int, lo: int, hi: int) -> float:
    """The score of a record of plaintext size [lo, hi] read as garbage (kind 0) or as a TLS 1.3
    ticket (kind 1): the same under every template, so worked out once per size."""
    key = (kind, lo, hi)
    got = _PER_SIZE.get(key)
    if got is None:
        if len(_PER_SIZE) >= 65536:
            _PER_SIZE.clear()
        got = _PER_SIZE[key] = (GARBAGE + _loglik((ANY,), lo, hi) if kind == 0
                                else math.log(0.5) + _loglik((TICKET.size,), lo, hi))
    return got


def _client_align_py(t: Template, obs: list[Obs], midway: bool = False):
    """Viterbi over client records: best[(state)] after each record; returns (loglik, path) or None.
    path: per record, the list of (state, token) it carried ([] = unexplained).  ``midway``: the
    capture began inside the dialogue, so the first line seen may be any line of the template."""
    expansions = _expansions(t, midway)
    START = _START
    NEG = -math.inf
    best = {START: (0.0, None)}
    history = []
    prev = None
    memo = _PATH_LL
    if len(memo) >= MAX_PATH_LL:
        memo.clear()
    for o in obs:
        nxt: dict = {}
        lo, hi = o.lo, o.hi
        garbage = _record_score(0, lo, hi)
        same_run = prev is not None and prev.run == o.run
        for s, (score, _) in best.items():
            sc = score + garbage
            if sc > nxt.get(s, (NEG,))[0]:
                nxt[s] = (sc, (s, ()))
            if s != START and same_run and t.slots[s[0]].group[s[1]].split:
                sc = score + CONTINUED  # the same HTTP message, next record
                if sc > nxt.get(s, (NEG,))[0]:
                    nxt[s] = (sc, (s, "cont"))
            for ns, path, cost, edge, sizes in expansions[s]:
                key = (id(sizes), lo, hi)
                ll = memo.get(key)
                if ll is None:
                    ll = memo[key] = _loglik_cached(sizes, lo, hi)
                if ll > NEG:
                    sc = score + cost + edge + ll
                    if sc > nxt.get(ns, (NEG,))[0]:
                        nxt[ns] = (sc, (s, path))
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


_FAST = fastalign.load()  # the C transcription of the two programmes below, or None


def _client_align(t: Template, obs: list[Obs], midway: bool = False):
    """:func:`_client_align_py`, in C when the extension is built (``fastalign``)."""
    if _FAST is not None:
        return fastalign.client_align(_FAST, t, obs, midway)
    return _client_align_py(t, obs, midway)


def _server_align(replies: list, obs: list[Obs], tls13: bool):
    """:func:`_server_align_py`, in C when the extension is built (``fastalign``)."""
    if _FAST is not None:
        return fastalign.server_align(_FAST, replies, obs, tls13)
    return _server_align_py(replies, obs, tls13)


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

    @property
    def bounds(self) -> tuple[int, int]:
        (alo, ahi), (blo, bhi) = self.a.bounds, self.b.bounds
        return min(alo, blo), max(ahi, bhi)


def _server_align_py(replies: list, obs: list[Obs], tls13: bool):
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
    # what a record may carry from reply i on, k replies: every choice of alternatives, the
    # latest time of those replies (one may not be answered before it was asked), where their
    # sizes can lie; worked out once per (i, k), the log-likelihood once per (i, k, record size)
    carry: list = [None] * m
    lls: dict = {}
    splits = [any(a[0].split for a in alts) for alts, _ts in replies]
    for j in range(n):
        o = obs[j]
        lo_o, hi_o = o.lo, o.hi
        garbage = _record_score(0, lo_o, hi_o)
        ticket = _record_score(1, lo_o, hi_o)
        u = unit[j]
        here, there = best[j], best[j + 1]
        at, to = here.get, there.get
        limit = o.ts + 1e-6
        for i in range(max(0, u - BAND - MAX_TICKETS), min(m, u + BAND + PER_RECORD_TOKENS * 2) + 1):
            score = at(i, _NONE)[0]
            if score == NEG:
                continue
            sc = score + garbage
            if sc > to(i, _NONE)[0]:
                there[i] = (sc, (j, i, "garbage", ()))
            if tls13 and i == 0 and j < MAX_TICKETS:
                sc = score + ticket
                if sc > to(0, _NONE)[0]:
                    there[0] = (sc, (j, i, "ticket", ()))
            if i == m:
                continue
            sc = score + SKIPPED_REPLY  # skip an unanswered reply
            if sc > at(i + 1, _NONE)[0]:
                here[i + 1] = (sc, (j, i, "skip", ()))
            # this record carries replies i..i+k-1
            ways = carry[i]
            if ways is None:
                ways = carry[i] = _carry(replies, i)
            for k, (latest, opts, least, support) in enumerate(ways, 1):
                if latest > limit:
                    break
                if hi_o < least:
                    break  # too small for any choice of these replies, and for more of them
                key = (i, k, lo_o, hi_o)
                got = lls.get(key)
                if got is None:  # a size outside a choice's support has no mass there: not worked out
                    got = lls[key] = [_mixed_loglik(sizes, lo_o, hi_o) + (k - 1) * SHARED_RECORD
                                      if blo <= hi_o and lo_o <= bhi else NEG
                                      for (_opt, sizes), (blo, bhi) in zip(opts, support)]
                for (opt, _sizes), ll in zip(opts, got):
                    if ll > NEG:
                        sc = score + ll
                        if sc > to(i + k, _NONE)[0]:
                            there[i + k] = (sc, (j, i, "reply", opt))
            # a splittable reply spanning records j..e of one run
            if splits[i] and replies[i][1] <= limit:
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


_NONE = (-math.inf,)  # a state not reached yet


def _carry(replies: list, i: int) -> list:
    """For k = 1, 2, ... replies from reply ``i`` on in one record: (the latest of their times,
    every choice of alternatives with its sizes, the least size any choice can have, each
    choice's support)."""
    ways = []
    options: list = [[]]
    for x in range(i, min(len(replies), i + PER_RECORD_TOKENS)):
        options = [opt + [alt] for opt in options for alt in replies[x][0]]
        opts = [(tuple(opt), [a[1] for a in opt]) for opt in options]
        support = [_support(sizes) for _opt, sizes in opts]
        ways.append((max(replies[y][1] for y in range(i, x + 1)), opts, min(b[0] for b in support), support))
    return ways


def _support(sizes: list) -> tuple[int, int]:
    """The sizes the lines together can have (a superset): outside it ``_mixed_loglik`` is -inf,
    as every line has at least its smallest and at most its largest size."""
    lo = hi = 0
    for s in sizes:
        blo, bhi = s.bounds
        lo, hi = lo + blo, hi + bhi
    return lo, hi


def _mixed_loglik(sizes: list, ol: int, oh: int) -> float:
    if len(sizes) == 1:
        if isinstance(sizes[0], Size):
            return _loglik_cached((sizes[0],), ol, oh)
        p = sizes[0].mass(ol, oh)
        return math.log(p) if p > 0 else -math.inf
    plain = [s.a if isinstance(s, _Mix) else s for s in sizes]
    return _loglik(plain, ol, oh)


_SPLIT: list = [None, [], []]  # the last observations split by direction: every template reads the same ones


def _split(obs: list[Obs]) -> tuple[list[Obs], list[Obs]]:
    if _SPLIT[0] is not obs:
        _SPLIT[:] = [obs, [o for o in obs if o.direction == C2S], [o for o in obs if o.direction == S2C]]
    return _SPLIT[1], _SPLIT[2]


def _align(t: Template, obs: list[Obs], tls13: bool, handoff: str, first_after: tuple[int, int] | None,
           midway: bool = False) -> Parse | None:
    client, server = _split(obs)
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

