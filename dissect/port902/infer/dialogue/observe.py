"""TLS #1's application-data records as observations: direction and plaintext size interval.

AEAD ciphers give exact plaintext sizes; CBC gives them to a block (RFC 5246 §6.2.3.2, RFC 8446 §5.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...net.flows import C2S, S2C
from ...proto import tls as tlsmod

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


