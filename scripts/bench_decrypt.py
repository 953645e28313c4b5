#!/usr/bin/env python3
"""Decryption benchmark (issue 9): how fast ``analyze --keylog`` reads TLS, and what it costs.

    python scripts/bench_decrypt.py [--mb 150] [--suite ECDHE-RSA-AES256-GCM-SHA384] [--keep DIR]

Builds one port-902 NFC-over-TLS session with real OpenSSL TLS (Python's ``ssl`` in memory, key
log written by OpenSSL): banner, TLS #1 with the authd login and ``PROXY vpxa-nfcssl``, then
TLS #2 on the raw stream carrying an NFC ``FILE_PUT`` of ``--mb`` MB in 256 KiB FILE_DATA
chunks; written as a pcapng.  Then it measures, best of three runs each:

* **decrypt only** — the TLS #2 ciphertext fed to ``decrypt.ConnectionDecryptor`` (records split,
  decrypted, plaintext handed on), MB of ciphertext per second;
* **analyze** without and with the key log (``dissect.port902.analyze``), and checks that the
  decrypted session is NFC with confidence 1.0 and that the NFC parser saw every file byte;
* **full pipeline**: TLS #2 ciphertext MB / seconds of ``analyze --keylog`` (read, reassemble,
  decrypt, parse NFC -- everything), the figure issue 9 asks >= 200 MB/s of.

Prints a markdown table.  Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from dissect.port902 import analyze  # noqa: E402
from dissect.port902.decrypt import ConnectionDecryptor, load_keylog  # noqa: E402
from dissect.port902.decrypt.export import PcapngWriter, _Conversation  # noqa: E402
from dissect.port902.lab import nfc as labnfc  # noqa: E402

BANNER = (b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
          b"MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported/t\r\n")


def build(path: Path, keys: Path, mb: int, suite: str) -> bytes:
    """Write the capture; return the TLS #2 client ciphertext (for the decrypt-only run)."""
    from test_decrypt import Pair  # real OpenSSL in memory, key log via ssl.keylog_filename

    tmp = Path(tempfile.mkdtemp())
    with open(path, "wb") as handle:
        w = PcapngWriter(handle)
        conv = _Conversation(w, ipaddress.ip_address("10.9.0.5"), ipaddress.ip_address("10.9.0.2"), 50123, 902)
        t = 1715677200.0
        conv.open(t)
        conv.data(False, t, BANNER)
        one = Pair(tmp, "1.2", suite, keylog=str(keys))
        for fc, data in one.wire:
            conv.data(fc, t, data)
        lines = [(True, b"USER vpxuser\r\n"), (False, b"331 Password required for vpxuser.\r\n"),
                 (True, b"PASS 52b1c3d4-aaaa-bbbb-cccc-0123456789ab\r\n"), (False, b"230 User vpxuser logged in.\r\n"),
                 (True, b"PROXY vpxa-nfcssl\r\n"), (False, b"200 Connect ha-nfcssl\r\n")]
        for fc, line in lines:
            n = len(one.wire)
            one.send(fc, line)
            for fc2, data in one.wire[n:]:
                conv.data(fc2, t, data)
            t += 0.001
        two = Pair(tmp, "1.2", suite, keylog=str(keys))
        for fc, data in two.wire:
            conv.data(fc, t, data)
        chunk = os.urandom(256 * 1024)
        total = mb * 1024 * 1024
        ciphertext = bytearray()
        first = labnfc.file_put("/vmfs/volumes/ds1/vm/vm-flat.vmdk", total)
        sent = 0
        pieces = [first]
        while sent < total:
            part = chunk[:min(len(chunk), total - sent)]
            pieces.append(labnfc.file_data(part))
            sent += len(part)
        pieces.append(labnfc.file_data(b""))
        for piece in pieces:
            n = len(two.wire)
            two.send(True, piece)
            for fc, data in two.wire[n:]:
                conv.data(fc, t, data)
                if fc:
                    ciphertext += data
            t += 0.0005
        conv.close(t)
    return bytes(ciphertext)


def best(fn, runs=3):
    times = []
    out = None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=150)
    ap.add_argument("--suite", default="ECDHE-RSA-AES256-GCM-SHA384")
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    cap, keys = work / "nfcssl.pcapng", work / "nfcssl.keys"
    keys.unlink(missing_ok=True)
    ct = build(cap, keys, args.mb, args.suite)
    keylog = load_keylog(keys)
    # the decryptor needs the handshake records first: replay TLS #2 from its ClientHello
    analysis = analyze(cap, keylog=keylog, observers=[])
    s = analysis.sessions[0]

    def decrypt_only():
        got = [0]
        dec = ConnectionDecryptor(keylog, lambda hs, fc, ctype, data, ts, fr: got.__setitem__(0, got[0] + len(data)),
                                  lambda *a: None)
        # the handshake flights of TLS #2 (client and server) precede the bulk client records in `ct`:
        # feed the server's ServerHello first from the recorded session wire
        for fc, data in HANDSHAKE:
            dec.data(fc, data, 0.0, 0)
        view = memoryview(ct)
        for i in range(0, len(view), 65536):
            dec.data(True, view[i:i + 65536], 0.0, 0)
        return got[0]

    global HANDSHAKE
    HANDSHAKE = _tls2_handshake(cap)
    t_dec, plain = best(decrypt_only)
    t_plain, _ = best(lambda: analyze(cap, observers=[]))
    t_keys, res = best(lambda: analyze(cap, keylog=keylog, observers=[]))
    s = res.sessions[0]
    nfc_bytes = s.decryption.nfc_data_bytes
    ok = s.feature == "NFC" and s.confidence == 1.0 and nfc_bytes == args.mb * 1024 * 1024
    size = cap.stat().st_size
    ct_mb = len(ct) / 1e6
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"capture: {size / 1e6:.1f} MB pcapng, TLS #2 client ciphertext {ct_mb:.1f} MB ({args.suite})\n")
    print("| run | seconds | MB/s |")
    print("| --- | ---: | ---: |")
    print(f"| decrypt only (ConnectionDecryptor, TLS #2 ciphertext) | {t_dec:.2f} | {ct_mb / t_dec:.0f} of ciphertext |")
    print(f"| analyze, no key log | {t_plain:.2f} | {size / 1e6 / t_plain:.0f} of capture |")
    print(f"| analyze --keylog (decrypt + NFC parse) | {t_keys:.2f} | {size / 1e6 / t_keys:.0f} of capture |")
    print(f"| full pipeline: TLS #2 ciphertext / analyze --keylog seconds | {t_keys:.2f} | {ct_mb / t_keys:.0f} of ciphertext |")
    print(f"\ndecryption adds {t_keys - t_plain:.2f} s: {ct_mb / max(t_keys - t_plain, 1e-9):.0f} MB/s of ciphertext; "
          f"NFC file bytes seen {nfc_bytes}, feature {s.feature} {s.confidence}; plaintext {plain} bytes")
    if not ok:
        print("CHECK FAILED", file=sys.stderr)
        return 1
    return 0


def _tls2_handshake(cap: Path):
    """The TLS #2 handshake flights from the capture (what precedes the bulk in each direction)."""
    from dissect.port902.io.capture import CaptureReader, Selection

    flights, seen_hello = [], 0
    with CaptureReader(cap, Selection()) as reader:
        for pkt in reader:
            data = bytes(pkt.payload) if getattr(pkt, "payload", None) is not None else b""
            if not data:
                continue
            fc = pkt.dport == 902
            if fc and data[:1] == b"\x16" and data[5:6] == b"\x01":
                seen_hello += 1
            if seen_hello == 2:
                if fc and data[:1] == b"\x17":
                    break
                flights.append((fc, data))
    return flights


HANDSHAKE: list = []

if __name__ == "__main__":
    sys.exit(main())
