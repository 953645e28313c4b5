"""Timestamps from a capture are data, not trusted: render any value (issue 13).

A damaged or hostile capture can carry a time far outside what ``datetime`` (years 1-9999)
or pandas' ``datetime64[ns]`` (1677-2262) can hold, or NaN; these helpers never raise.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

# datetime64[ns] holds about +-9.22e9 seconds around the epoch
NS_LIMIT_S = 9.2e9


def utc_text(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S.%f", cut: int = 3, missing: str = "-") -> str:
    """``ts`` (epoch seconds) as UTC text in ``fmt`` (the last ``cut`` characters dropped);
    a value no calendar can show is written as the number it is."""
    if ts is None:
        return missing
    try:
        text = datetime.fromtimestamp(ts, tz=timezone.utc).strftime(fmt)
    except (ValueError, OverflowError, OSError, TypeError):
        if isinstance(ts, float) and not math.isfinite(ts):
            return f"{ts} (not a time)"
        return f"{ts!r} s (out of calendar range)"
    return text[:-cut] if cut else text


def ns_safe(values):
    """A pandas Series of epoch seconds with the values ``datetime64[ns]`` cannot hold as NaN."""
    return values.where(values.abs() < NS_LIMIT_S)
