"""Ranking: problems first, most likely first, a cap per kind (counts continue past it).
"""

from __future__ import annotations

from collections import Counter

from .context import _Candidate
from .findings import MAX_FINDINGS_PER_KIND, Finding, _clamp


def rank(candidates: list[_Candidate], counts: Counter) -> list[Finding]:
    """Problems before notes, most likely first; at most MAX_FINDINGS_PER_KIND per kind.  Only
    the findings kept are rendered; the others are counted (``findings_suppressed``).  The sort
    is stable: equal keys keep the builders' order."""
    ordered = sorted(candidates, key=lambda c: (c.severity != "problem", -round(_clamp(c.likelihood), 3),
                                                c.first_ts or 0.0, c.kind))
    per_kind: Counter = Counter()
    kept = []
    for c in ordered:
        per_kind[c.kind] += 1
        if per_kind[c.kind] > MAX_FINDINGS_PER_KIND:
            counts["findings_suppressed"] += 1
            continue
        f = c.render(*c.args)
        f.key = c.key if c.key is not None else (c.kind, f.source, *f.hosts[:2])
        f.likelihood = round(_clamp(f.likelihood), 3)
        f.evidence = sorted({x for x in f.evidence if x is not None})
        seen = []
        for h in f.hosts:
            if h not in seen:
                seen.append(h)
        f.hosts = seen
        kept.append(f)
    for i, f in enumerate(kept, 1):
        f.rank = i
    return kept


