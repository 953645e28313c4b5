"""Capture files -> the packets that matter for port 902 (stage 1 of the pipeline).

Reads classic pcap (both byte orders, µs and ns timestamps), pcapng (several
interfaces, per-interface ``if_tsresol``/``if_tsoffset``, EPB/SPB/OPB) and either
of them gzip-compressed, for the link types an ESXi/vCenter/client capture comes
in: Ethernet (802.1Q / QinQ), Linux cooked SLL and SLL2, raw IPv4/IPv6 and BSD
loopback.

Why it looks the way it does: multi-GB captures are normal and port-902 traffic is
usually a few percent of them.  The loop below walks record headers in a large
``bytes`` buffer with precompiled ``struct`` objects and decides from a handful of
integers whether a packet is interesting.  Only packets that are (TCP on a watched
port, or TCP whose payload starts with the authd greeting, or UDP/ICMP a caller
asked for) become a :class:`Packet`; everything else costs a few integer
operations and no Python object.  The file is streamed in chunks, so memory stays
flat however large the capture.

Two engines make that decision.  The C extension ``_fastscan`` (built by ``setup.py``
when a compiler is there) walks the records of a buffer -- the memory-mapped file, or
the decompressed chunks of a gzip stream -- and hands back only the records to keep: a
plain TCP or UDP packet as its finished :class:`Packet` (the fields ``_full_decode``
would produce), anything else (an authd greeting, a TCP header cut by the snaplen, ICMP)
as offsets that Python decodes with ``_full_decode``.  Every unusual record (corrupt
lengths, pcapng section and interface blocks, packet blocks that need a warning) is
handled here in Python with the same code as the pure-Python engine, so both engines
select the same packets and report the same damage (``tests/test_fastscan.py`` checks
that on samples, damaged and fuzzed files).  The pure-Python loop below is the fallback
when the extension is not built, and can be forced with the environment variable
``DISSECT902_PURE_PYTHON=1`` or ``CaptureReader(..., engine="python")``.

Damage is reported, not raised: a file cut off mid-record, a corrupt block or a
snaplen-truncated packet yields a :class:`CaptureWarning` naming the byte offset,
and everything before it is still analysed.  Only a file that is not a capture at
all raises :class:`~dissect.port902.errors.CaptureError`.

Modules: ``formats`` (declared file and link structures), ``packet`` (what comes out),
``reader`` (``CaptureReader``), ``source`` (files, ``-``, FIFOs and open streams), ``pcapng``,
``decode`` (link and IP decoding, the hot path), ``engine`` (the C scanner and its driver). This module is the stage's public face.
"""

from .formats import (  # noqa: F401
                      AUTHD_GREETING,
                      CHUNK_SIZE,
                      DEFAULT_TCP_PORTS,
                      IPPROTO_ICMP,
                      IPPROTO_ICMPV6,
                      IPPROTO_TCP,
                      IPPROTO_UDP,
                      LINKTYPES,
                      MAX_RECORD,
)
from .native import ENGINES, _fastscan, default_engine  # noqa: F401
from .packet import CaptureStats, CaptureWarning, Packet, Selection
from .reader import CaptureReader, read_packets

__all__ = [
    "CaptureReader",
    "CaptureStats",
    "CaptureWarning",
    "Packet",
    "Selection",
    "read_packets",
    "default_engine",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPPROTO_ICMP",
    "IPPROTO_ICMPV6",
]
