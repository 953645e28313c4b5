"""Charts of an analysis: traffic over time, sessions, record-size fingerprints, hosts.

Four chart kinds (``dissect902 plot --kind``), each a function that takes an
:class:`~dissect.port902.analysis.Analysis` (or a sessions DataFrame plus the frames it
needs) and returns a matplotlib Figure:

``bytes_over_time``
    TCP payload per time bin, stacked by feature, server->client above and
    client->server below, each with its own scale (a console receives ten times what it
    sends).  Where TLS is visible the bytes are placed at the time of each TLS record
    (header + length), readable authd lines at their own time.  Bytes nothing accounts
    for - cleartext NFC after TLS #1, records beyond ``max_records`` - have no per-packet
    time in a session record, so they are spread evenly from the session's last timed
    byte to its end, and the chart says how many bytes that was.  ``traffic_frame``
    returns the numbers.
``session_timeline``
    One bar per session from first to last packet, coloured by feature, with arrows for
    classic ESX's 903->902 hand-offs (``infer.links``) and for reconnects (``links_frame``:
    a retry after a failure, a console reopened on the same VM or on another host), and
    markers for SYN retries, the second TLS handshake and sessions that began before the
    capture.
``fingerprints``
    TLS record length x time, one panel per session: why MKS (a long trickle of tiny
    client records - keys, pointer - and bursts of screen updates), NFC (a fraction of
    a second of 16 KiB records) and SOAP (a few large records both ways inside TLS #1)
    look different although everything is encrypted.
``host_totals``
    Bytes and sessions per server (ESXi host) and per client, stacked by feature.

``feature_distributions`` (notebook 4) draws the classifier's inputs per label against
the thresholds in ``infer.classify``.

Design rules (design.md; the issue): matplotlib only and no pyplot (no global state,
safe under any backend; figures are :class:`Chart`, a Figure that also renders itself in
Jupyter); the Okabe-Ito palette, which stays distinguishable for the common
colour-vision deficiencies; titles, units and legends on every chart; times as mm:ss
since the first packet with the absolute UTC start in the axis label; big captures are
binned (traffic), packed into lanes (timeline) or aggregated per cell (fingerprints)
rather than drawn point by point; labels are capped so busy timelines stay legible; an
empty analysis gives a figure that says there is nothing to draw.

Modules: ``style`` (palette, units, clock axes, ``Chart``), ``inputs``, one module per chart
(``traffic``, ``timeline``, ``fingerprints``, ``hosts``, ``distributions``), ``links`` (the
timeline's arrows) and ``dispatch`` (``plot``, ``save``).
"""

from ...extras import require

require("matplotlib", "charts")  # a one-line error naming the extra, before any chart module imports it
require("pandas", "charts")

from .dispatch import KINDS, plot, save
from .distributions import feature_distributions
from .fingerprints import MAX_POINTS, fingerprints
from .hosts import host_totals
from .links import links_frame
from .style import (
    FEATURE_COLORS,
    FEATURE_ORDER,
    FORMATS,
    GREY,
    MAX_BINS,
    MAX_LABELED_ROWS,
    OKABE_ITO,
    STYLE,
    TRAFFIC_BINS,
    Chart,
    clock,
    human_bytes,
    nice_step,
)
from .timeline import session_timeline
from .traffic import bytes_over_time, traffic_frame

__all__ = [
    "OKABE_ITO", "FEATURE_COLORS", "FEATURE_ORDER", "KINDS", "FORMATS", "Chart",
    "bytes_over_time", "session_timeline", "fingerprints", "host_totals", "feature_distributions", "plot", "save",
    "traffic_frame", "links_frame", "human_bytes", "clock", "nice_step", "GREY", "STYLE", "TRAFFIC_BINS",
    "MAX_BINS", "MAX_LABELED_ROWS", "MAX_POINTS",
]
