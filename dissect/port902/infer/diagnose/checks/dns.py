"""Checks on name resolution: NXDOMAIN, server failures, no answer, no address (RFC 1035 §4.1.1).
"""

from __future__ import annotations

import os

from ..context import _Candidate, _Context
from ..evidence import NameLookup
from ..findings import (
    _LIKELIHOOD,
    _NOISE_LABELS,
    _VSPHERE_NAME,
    FOLLOW_WINDOW_S,
    Finding,
    _clamp,
    _frames,
    _plural,
)


def _noise_name(name: str) -> bool:
    first = name.split(".", 1)[0].lower()
    low = name.lower()
    return (first.startswith("_") or first in _NOISE_LABELS or low.endswith(".arpa") or name == ".")


_DNS_KINDS = {"NXDOMAIN": "dns_nxdomain", "no_answer": "dns_no_answer", "no_address": "dns_no_address"}


def dns_findings(ctx: _Context) -> list[_Candidate]:
    """Names that failed (and did not resolve afterwards) for the client that asked.

    Likelihood: 0.40, +0.25 when no 902 connection from that client followed within 60 s (the
    console never got as far as the host), +0.15 for a vSphere-looking name (esx…, vcenter…),
    +0.05 when it failed more than once, −0.10 when the client did open 902 soon after (it
    reached some host some other way).  wpad/isatap/_srv names and .arpa are ignored; .local
    is not (vsphere.local and corp.local are everyday vSphere names; mDNS is on 5353, not 53)."""
    out = []
    for entry in ctx.diag._names.values():
        if not entry.failed or _noise_name(entry.name):
            continue
        outcome = entry.outcome
        kind = _DNS_KINDS.get(outcome, "dns_servfail")
        likelihood = _LIKELIHOOD["dns"]
        t0 = entry.first_fail_ts or entry.first_ts
        source = ctx.diag._source(entry.source_index)
        followed = [s for s in ctx.by_client.get((source, entry.client), ())
                    if t0 <= s.start <= t0 + FOLLOW_WINDOW_S]
        if not followed:
            followed = _followed_elsewhere(ctx, entry, source, t0)
        fails = sum(v for k, v in entry.outcomes.items() if k != "NOERROR")
        if not followed:
            likelihood += 0.25
        else:
            likelihood -= 0.10
        if _VSPHERE_NAME.search(entry.name.split(".", 1)[0]):
            likelihood += 0.15
        if fails > 1:
            likelihood += 0.05
        likelihood = _clamp(likelihood)
        out.append(_Candidate(kind, likelihood, entry.first_ts, _render_dns,
                              (ctx, entry, kind, outcome, followed, fails, likelihood),
                              key=("dns", source, entry.client, entry.name.lower())))
    return out


def _followed_elsewhere(ctx: _Context, entry: NameLookup, source: str | None, t0: float) -> list:
    """902 sessions of the same client address in *other* captures that overlap the lookup's
    capture in time (several vantage points of one incident); [] when the captures do not overlap."""
    spans = getattr(ctx.diag, "_spans", [])
    own = spans[entry.source_index] if 0 <= entry.source_index < len(spans) else (None, None)
    if own[0] is None or own[1] is None:
        return []
    out = []
    for index, path in enumerate(ctx.diag._sources):
        if index == entry.source_index or index >= len(spans) or spans[index][0] is None:
            continue
        first, last = spans[index]
        if last < own[0] or first > own[1]:
            continue  # no overlap in time: no correlation
        out += [s for s in ctx.by_client.get((path, entry.client), ()) if t0 <= s.start <= t0 + FOLLOW_WINDOW_S]
    return sorted(out, key=lambda s: s.start)


def _render_dns(ctx: _Context, entry: NameLookup, kind: str, outcome: str, followed: list, fails: int,
                likelihood: float) -> Finding:
    resolvers = ", ".join(sorted(entry.resolvers)) or "?"
    said = {"NXDOMAIN": "answered NXDOMAIN (no such name)", "no_answer": "never answered",
            "no_address": "answered without any address record"}.get(outcome, f"answered {outcome}")
    detail = (f"{entry.client} asked {resolvers} for '{entry.name}' ({'/'.join(sorted(entry.qtypes))}; "
              f"{_plural(entry.queries, 'query')}, {_frames(entry.query_frames)}); the DNS server "
              f"{said} ({_plural(fails, 'time')}"
              + (f", {_frames(entry.fail_frames)}" if outcome != "no_answer" else "") + ").")
    if not followed:
        detail += (f" No 902 connection from {entry.client} followed within {FOLLOW_WINDOW_S:.0f} s: "
                   "the console never got as far as the host.")
    elif followed[0].source != ctx.diag._source(entry.source_index):
        detail += (f" No 902 connection followed in this capture, but in {os.path.basename(followed[0].source)}, "
                   f"which covers the same time, {entry.client} did open 902 to {followed[0].server} soon after "
                   f"(frame {followed[0].first_frame} of that capture), perhaps by address or another name.")
    else:
        detail += (f" {entry.client} did open 902 to {followed[0].server} soon after (frame "
                   f"{followed[0].first_frame}), perhaps by address or another name.")
    if outcome == "NXDOMAIN":
        advice = (f"'{entry.name}' does not exist in DNS for this client: add the A/AAAA record, fix the search "
                  "domain, or make vCenter know the host by a name clients can resolve (the console client "
                  "connects to the host by the name vCenter gives it).")
    elif outcome == "no_answer":
        advice = (f"The resolver {resolvers} did not answer: check that it is reachable from {entry.client} "
                  "(UDP/TCP 53 through firewalls) and running.")
    elif outcome == "no_address":
        advice = f"'{entry.name}' exists but has no address record of the type asked: add the A (or AAAA) record."
    else:
        advice = (f"The resolver {resolvers} could not resolve '{entry.name}' ({outcome}): check its forwarders "
                  "or the authoritative server of that zone.")
    titles = {"dns_nxdomain": f"'{entry.name}' does not resolve (NXDOMAIN)",
              "dns_no_answer": f"no DNS answer for '{entry.name}'",
              "dns_no_address": f"'{entry.name}' has no address",
              "dns_servfail": f"DNS lookup of '{entry.name}' failed ({outcome})"}
    return Finding(kind, titles[kind], detail, likelihood, advice,
                   [entry.client, *sorted(entry.resolvers)], entry.first_ts, entry.last_ts,
                   entry.query_frames + entry.fail_frames, [s.uid for s in followed[:1]],
                   source=ctx.diag._source(entry.source_index))


