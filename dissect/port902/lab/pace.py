"""Timing model: how long each party takes before it sends its next bytes.

Why: timing is a feature the dissector uses (an interactive console differs from a bulk copy,
a scripted brute force from a human), so the lab draws every delay from named, seeded ranges
instead of scattering constants. A larger lab can swap ranges per persona or traffic model and
still get deterministic output for a given seed.
"""

from __future__ import annotations

import random

# name -> (low, high) seconds, drawn uniformly
RANGES = {
    "reply": (0.0002, 0.0015),        # authd / hostd answers one control line
    "program": (0.00005, 0.0006),     # client software reacts to a reply (no human involved)
    "tls_server": (0.0008, 0.003),    # server computes its handshake flight (RSA signature)
    "tls_client": (0.0003, 0.0015),   # client verifies and answers a handshake flight
    "mks_attach": (0.015, 0.06),      # CONNECT <vmx> mks: authd hands the socket to the VMX
    "proxy": (0.002, 0.01),           # PROXY <service>: authd hands the socket to hostd NFC
    "disk_io": (0.0004, 0.004),       # NFC server reads or writes a disk extent
    "render": (0.004, 0.03),          # VMX renders a screen change into a FramebufferUpdate
    "keystroke": (0.09, 0.26),        # between two key presses while typing
    "key_hold": (0.04, 0.11),         # key down to key up
    "pointer": (0.008, 0.02),         # between two PointerEvents while the mouse moves
    "http": (0.002, 0.02),            # hostd answers a SOAP request
    "attempt": (0.05, 0.4),           # a brute-force tool starts its next try
}


class Pace:
    """Seeded delays by name; ``slowdown`` stretches all of them (a busy host, a slow client)."""

    def __init__(self, rng: random.Random, slowdown: float = 1.0, **ranges: tuple[float, float]):
        self.rng = rng
        self.slowdown = slowdown
        self.ranges = {**RANGES, **ranges}

    def __call__(self, what: str) -> float:
        """A delay for ``what`` (one of ``RANGES``)."""
        low, high = self.ranges[what]
        return self.rng.uniform(low, high) * self.slowdown

    def between(self, low: float, high: float) -> float:
        """A delay in ``[low, high]`` (human think time, idle stretches)."""
        return self.rng.uniform(low, high) * self.slowdown
