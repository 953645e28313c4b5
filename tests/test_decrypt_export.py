"""--export-decrypted streams (issue 9): the pcapng is written while the capture is read, so the
memory it takes does not grow with the decrypted transfer (a ratio, not a figure), and what it
wrote is the whole plaintext, as tshark reads it back."""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from dissect.port902 import analyze
from dissect.port902.decrypt import load_keylog
from dissect.port902.decrypt.export import StreamExport

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import bench_decrypt  # noqa: E402  (real OpenSSL NFC-over-TLS #2 capture builder)

SUITE = "ECDHE-RSA-AES128-SHA256"  # CBC + HMAC: the suite with the most per-record work


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    out = {}
    for mb in (4, 16):
        cap, keys = d / f"nfc{mb}.pcapng", d / f"nfc{mb}.keys"
        bench_decrypt.build(cap, keys, mb, SUITE)
        out[mb] = (cap, load_keylog(keys))
    return out


def _peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _stream(cap, keylog, path):
    with StreamExport(str(path)) as out:
        res = analyze(cap, keylog=keylog, observers=[], keep_plaintext=out)
    assert res.sessions[0].decryption.nfc_data_bytes > 0
    return out.conversations


def test_peak_memory_does_not_grow_with_the_transfer(captures, tmp_path):
    """Peak traced memory of analyze --keylog with the streaming export, minus the same analysis
    without an export (the reader's window and the parsers are the same in both): that extra
    does not grow when the transfer is 4x larger.  Holding the plaintext instead
    (``keep_plaintext=True``) adds about the whole transfer: the check can fail."""
    extra, held = {}, {}
    for mb, (cap, keylog) in captures.items():
        base = _peak(lambda: analyze(cap, keylog=keylog, observers=[]))
        extra[mb] = _peak(lambda: _stream(cap, keylog, tmp_path / f"{mb}.pcapng")) - base
        held[mb] = _peak(lambda: analyze(cap, keylog=keylog, observers=[], keep_plaintext=True)) - base
        assert (tmp_path / f"{mb}.pcapng").stat().st_size > mb * 1024 * 1024
    assert extra[16] <= 1.5 * max(extra[4], 0) + (1 << 20), extra
    assert held[16] >= 12 * 1024 * 1024 and held[16] > 3 * held[4], held


@pytest.mark.tools("tshark")
def test_streamed_export_holds_every_plaintext_byte(captures, tmp_path):
    cap, keylog = captures[4]
    out = tmp_path / "inner.pcapng"
    assert _stream(cap, keylog, out) == 2  # TLS #1 (authd lines) and TLS #2 (NFC)
    res = analyze(cap, keylog=keylog, observers=[], keep_plaintext=True)
    plain = {}
    for hs, fc, _ts, _frame, data, mode in res.sessions[0].decryption.plaintext:
        if mode != "lines":
            plain[fc] = plain.get(fc, 0) + len(data)
    rows = subprocess.run(["tshark", "-n", "-r", str(out), "-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.stream",
                           "-e", "tcp.dstport", "-e", "tcp.len"], capture_output=True, text=True, timeout=300,
                          check=True).stdout.splitlines()
    by = {}
    for row in rows:
        stream, dport, n = row.split("\t")
        key = (stream, dport == "902")
        by[key] = by.get(key, 0) + int(n)
    # stream 1 is the NFC conversation (a conversation of its own after TLS #1's ended): every
    # decrypted byte, each way
    assert by[("1", True)] == plain[True] and by.get(("1", False), 0) == plain.get(False, 0)
    # stream 0 the authd lines as the dialogue shows them: the password redacted
    lines = subprocess.run(["tshark", "-n", "-r", str(out), "-Y", "tcp.stream == 0 && tcp.len > 0", "-T", "fields",
                            "-e", "tcp.payload"], capture_output=True, text=True, timeout=300, check=True).stdout
    text = bytes.fromhex("".join(lines.split())).decode("latin-1")
    assert "PASS <redacted>" in text and "52b1c3d4" not in text and "PROXY vpxa-nfcssl" in text


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_streaming_redaction_whatever_the_chunking(step):
    """The export's on-the-fly masks give the same bytes as masking the whole stream at once."""
    import struct

    from dissect.port902.decrypt.export import _HttpMask, _KeysymZero

    http = (b"POST /sdk HTTP/1.1\r\nCookie: vmware_soap_session=abc\r\nContent-Length: 60\r\n\r\n"
            b"<Login><userName>root</userName><password>s3cr3t!</password></Login>")
    mask = _HttpMask()
    out = b"".join(mask.feed(http[i:i + step]) for i in range(0, len(http), step)) + mask.feed(b"", final=True)
    assert len(out) == len(http) and b"abc" not in out and b"s3cr3t" not in out and b"<userName>root" in out
    key = struct.pack("!BBxxI", 4, 1, 0x61)
    rfb = b"RFB 003.008\n\x01\x01" + key + struct.pack("!BxxxI", 6, 5) + b"\x04\x01\x00\x00\x00" + key
    z = _KeysymZero(14)
    out = b"".join(z.feed(rfb[i:i + step]) for i in range(0, len(rfb), step))
    zeroed = struct.pack("!BBxxI", 4, 1, 0)
    assert out == rfb[:14] + zeroed + struct.pack("!BxxxI", 6, 5) + b"\x04\x01\x00\x00\x00" + zeroed
