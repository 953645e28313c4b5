"""Human-readable summaries of a parse: the dialogue as read (``USER(~24) 331 PASS(~24) 530 ×3``).
"""

from __future__ import annotations

from ...net.flows import C2S
from .align import Parse
from .grammar import TICKET

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
