"""What a dataset draws from: the weights and ranges of every choice, and the ``Options`` of a run.

Job: one table per random choice the dataset builder makes — which features a persona serves
(protocol.md §2.2 banner tokens: SSL, SOAP, VMXARGS, NFCSSL), NFC styles per persona (§5.3),
kinds of NONE session (§11), TLS cipher suites per version, network profiles (RTT, jitter,
loss, bandwidth), capture profiles (span port, host capture with offload, snaplen), MSS,
snaplens and link types — plus the two sampling helpers and ``Options``, what ``generate``
varies. Changing a weight here changes every dataset drawn with the same seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DATASET_SCHEMA = "dissect902-lab-dataset/1"
FEATURE_CYCLE = ("MKS", "NFC", "SOAP", "VMXARGS", "NONE")
FEATURE_WEIGHTS = {"MKS": 3.0, "NFC": 3.0, "SOAP": 1.5, "VMXARGS": 1.0, "NONE": 3.0}

# persona -> features it can serve (protocol.md §2.2 tokens: SSL, SOAP, VMXARGS, NFCSSL)
SUPPORT = {
    "gsx-legacy": {"NONE"},
    "ws912": {"NONE", "SOAP"},
    "vmserver1": {"MKS", "NONE"},
    "esx-classic": {"MKS", "NFC", "SOAP", "NONE"},
    "esxi55": {"MKS", "NFC", "SOAP", "VMXARGS", "NONE"},
    "esxi6": {"MKS", "NFC", "SOAP", "VMXARGS", "NONE"},
    "esxi8": {"MKS", "NFC", "SOAP", "VMXARGS", "NONE"},
    "ws902": {"MKS", "NFC", "SOAP", "NONE"},
    "ws902-b9": {"MKS", "NFC", "SOAP", "NONE"},
}
NFC_STYLES = {           # persona -> style weights
    "esxi8": {"vddk-aio": 5, "nfclib": 2, "photon": 1},
    "esxi6": {"vddk-fssrvr": 3, "vddk-aio": 1.5, "nfclib": 2, "photon": 1},
    "esxi55": {"vddk-fssrvr": 3, "vddk-aio": 0.5, "nfclib": 2, "photon": 1},
    "esx-classic": {"vddk-fssrvr": 2, "nfclib": 2, "photon": 2},
    "ws902": {"nfclib": 3, "photon": 1},
    "ws902-b9": {"nfclib": 3, "photon": 1},
}
NONE_KINDS = {"brute-single": 2.0, "brute-multi": 1.5, "probe": 1.5, "banner": 1.2, "tls-only": 2.0,
              "unanswered": 1.0, "refused": 0.8}
CIPHERS = {
    "1.2": {"ECDHE-RSA-AES128-GCM-SHA256": 4, "ECDHE-RSA-AES256-GCM-SHA384": 4, "ECDHE-RSA-CHACHA20-POLY1305": 1.5,
            "ECDHE-RSA-AES128-SHA256": 1, "ECDHE-RSA-AES256-SHA384": 1, "ECDHE-RSA-AES128-SHA": 1, "AES256-SHA": 0.7,
            "AES128-GCM-SHA256": 0.7, "AES256-SHA256": 0.5},
    "1.1": {"ECDHE-RSA-AES256-SHA": 2, "AES128-SHA": 1, "AES256-SHA": 1},
    "1.0": {"ECDHE-RSA-AES256-SHA": 2, "ECDHE-RSA-AES128-SHA": 1, "AES128-SHA": 1, "AES256-SHA": 1},
}
ALT_PORTS = (9020, 10902, 2902, 913, 8902, 4902)

# network profile -> RTT range (s, log-uniform), jitter as a share of the RTT, loss range, bandwidth (B/s)
CONDITIONS = {
    "clean": {"rtt": (0.0002, 0.001), "jitter": (0.0, 0.0), "loss": (0.0, 0.0), "bw": (1.25e8, 1.25e8)},
    "lan": {"rtt": (0.0001, 0.002), "jitter": (0.0, 0.15), "loss": (0.0, 0.0005), "bw": (1.25e8, 1.25e9)},
    "campus": {"rtt": (0.001, 0.012), "jitter": (0.02, 0.25), "loss": (0.0, 0.003), "bw": (1.25e7, 1.25e8)},
    "wan": {"rtt": (0.015, 0.2), "jitter": (0.02, 0.3), "loss": (0.0, 0.01), "bw": (1.25e6, 2.5e7)},
    "lossy": {"rtt": (0.002, 0.12), "jitter": (0.05, 0.3), "loss": (0.01, 0.03), "bw": (2.5e6, 1.25e8)},
}
# capture profiles: network profile(s) + capture kind; "varied" draws one per capture by weight
CAPTURE_PROFILES = {
    "clean": ("clean", "span", 0.0),
    "lan": ("lan", "span", 3.0),
    "campus": ("campus", "span", 1.5),
    "wan": ("wan", "span", 2.0),
    "lossy": ("lossy", "span", 1.0),
    "host": (("lan", "campus", "wan"), "host", 1.5),
    "truncated": (("lan", "campus", "wan"), "snaplen", 1.0),
}
CONDITION_CHOICES = ("varied", *CAPTURE_PROFILES)
MSS_CHOICES = {1460: 8, 1400: 1, 1380: 1, 1360: 0.6, 1260: 0.4, 1220: 0.3, 536: 0.25, 8960: 0.6, 9000: 0.3}
SNAPLENS = {68: 0.4, 96: 1.5, 128: 1.5, 200: 1.0, 256: 1.0, 512: 0.5}
SPAN_LINKS = {"ethernet": 5, "vlan": 2, "qinq": 0.4, "raw": 0.6, "sll": 0.5, "sll2": 0.6}


def pick(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    if low <= 0 or high <= low:
        return max(low, high)
    return math.exp(rng.uniform(math.log(low), math.log(high)))


@dataclass
class Options:
    """What ``generate`` varies; defaults are the CLI's."""

    sessions_per_capture: tuple[int, int] = (6, 12)
    conditions: str = "varied"
    midstream_share: float = 0.2
    min_bytes: int = 4096
    max_bytes: int = 64 << 20
    max_console_s: float = 10800.0
    background: bool = True
    keys: bool = False
    prefix: str = "lab"

    def __post_init__(self):
        if isinstance(self.sessions_per_capture, int):
            self.sessions_per_capture = (self.sessions_per_capture, self.sessions_per_capture)
        self.sessions_per_capture = tuple(self.sessions_per_capture)
        if self.conditions not in CONDITION_CHOICES:
            raise ValueError(f"conditions must be one of {CONDITION_CHOICES}")
        if not 0.0 <= self.midstream_share <= 1.0:
            raise ValueError("midstream_share must be within [0, 1]")
        if self.max_bytes < self.min_bytes:
            raise ValueError("max_bytes must be >= min_bytes")
