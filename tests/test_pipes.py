"""Captures from streams that cannot seek or be memory-mapped: ``-`` (a pipe), FIFOs, a live tcpdump.

Both engines; pcap, pcapng and gzip.  The reference is the same capture read from its file: the
result must be the same apart from the name of the source.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ENGINES = ["c", "python"]
CLI = [sys.executable, "-m", "dissect.port902"]


def _env(engine: str) -> dict[str, str]:
    return dict(os.environ, DISSECT902_PURE_PYTHON="1" if engine == "python" else "0")


def _without_names(x):
    if isinstance(x, dict):
        return {k: (None if k in ("path", "source") else _without_names(v)) for k, v in x.items()}
    if isinstance(x, list):
        return [_without_names(v) for v in x]
    return x


def _analyze_file(path: Path, engine: str) -> dict:
    out = subprocess.run(CLI + ["analyze", "-q", "-f", "json", str(path)], env=_env(engine),
                         capture_output=True, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["mixed-esxi.pcap", "nfc-transfers.pcapng", "mixed-esxi.pcap.gz"])
def test_standard_input_reads_like_the_file(tmp_path, engine, name):
    src = SAMPLES / name.removesuffix(".gz")
    data = src.read_bytes()
    if name.endswith(".gz"):
        import gzip

        data = gzip.compress(data)
        src = tmp_path / name
        src.write_bytes(data)
    done = subprocess.run(CLI + ["analyze", "-q", "-f", "json", "-"], input=data, env=_env(engine),
                          capture_output=True, check=True)
    got = json.loads(done.stdout)
    assert got["captures"][0]["path"] == "-"
    assert got["captures"][0]["size_bytes"] == len(data)  # what the stream delivered
    assert got["sessions"], "the sample has sessions"
    assert _without_names(got) == _without_names(_analyze_file(src, engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_fifo_written_slowly_is_read_to_its_end(tmp_path, engine):
    """A writer that delivers the capture in small, uneven pieces with pauses (records split across
    reads): nothing lost, nothing decoded twice."""
    src = SAMPLES / "nfc-transfers.pcapng"
    data = src.read_bytes()
    fifo = tmp_path / "live.pcapng"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as fh:
            step, pos = 1, 0
            while pos < len(data):
                n = min(len(data) - pos, 1 + (step * 7919) % 65521)
                fh.write(data[pos:pos + n])
                fh.flush()
                pos += n
                step += 1
                if step % 8 == 0:
                    time.sleep(0.002)

    writer = threading.Thread(target=write)
    writer.start()
    done = subprocess.run(CLI + ["analyze", "-q", "-f", "json", str(fifo)], env=_env(engine),
                          capture_output=True, check=True, timeout=120)
    writer.join()
    got = json.loads(done.stdout)
    assert got["captures"][0]["size_bytes"] == len(data)
    assert _without_names(got) == _without_names(_analyze_file(src, engine))


def test_an_open_stream_is_read_without_seeking(tmp_path):
    from dissect.port902.io.capture import CaptureReader

    src = SAMPLES / "mixed-esxi.pcap"
    proc = subprocess.Popen(["cat", str(src)], stdout=subprocess.PIPE)
    try:
        with CaptureReader(proc.stdout) as reader:
            frames = [p.frame for p in reader]
            stats = reader.stats
    finally:
        proc.stdout.close()  # the caller's stream: the reader does not close it
        proc.wait()
    with CaptureReader(src) as ref:
        assert frames == [p.frame for p in ref]
        assert stats.packets == ref.stats.packets and not stats.warnings
    assert stats.size_bytes == src.stat().st_size


def _serve_greeting(sock: socket.socket) -> None:
    while True:
        try:
            conn, _addr = sock.accept()
        except OSError:  # closed: the test is over
            return
        with conn:
            conn.sendall(b"220 VMware Authentication Daemon Version 1.10: SSL Required, "
                         b"ServerDaemonProtocol:SOAP, MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported\r\n")
            conn.recv(100)


def _connect(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.recv(200)
        c.sendall(b"QUIT\r\n")
        return f"127.0.0.1:{c.getsockname()[1]}"


@pytest.mark.tools("tcpdump")
@pytest.mark.parametrize("engine", ENGINES)
def test_tcpdump_writing_to_a_pipe(engine):
    """`tcpdump -U -w - | dissect902 analyze -`: real loopback traffic (an authd greeting on an
    ephemeral port, found by content), read from tcpdump's stdout while it captures (immediate mode:
    without it packets still in the kernel's ring when tcpdump is stopped are never written)."""
    if os.geteuid() != 0 and not os.environ.get("DISSECT902_REQUIRE_TOOLS"):
        pytest.skip("tcpdump needs root to capture on lo")
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    dump = subprocess.Popen([shutil.which("tcpdump"), "-i", "lo", "-U", "--immediate-mode", "-B", "8192", "-n", "-s", "0", "-w", "-",
                             f"tcp port {port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = dump.stderr.readline()  # "listening on lo, ..." once it captures
        assert b"listening on" in line, line
        ana = subprocess.Popen(CLI + ["analyze", "-q", "-f", "json", "-"], stdin=dump.stdout,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(engine))
        dump.stdout.close()  # the analysis holds the read end now
        threading.Thread(target=_serve_greeting, args=(srv,), daemon=True).start()
        clients = [_connect(port) for _ in range(3)]
        time.sleep(1.0)
        for _ in range(3):  # the tail a stopped tcpdump may not have written yet: not counted
            _connect(port)
            time.sleep(0.1)
    finally:
        dump.send_signal(signal.SIGINT)
        _, said = dump.communicate(timeout=10)  # closes its stderr too
        srv.close()
    out, err = ana.communicate(timeout=60)
    assert ana.returncode == 0, err
    got = json.loads(out)
    assert got["captures"][0]["path"] == "-"
    # every packet tcpdump wrote is read (it may itself lose some on a busy machine: the kernel's count)
    captured = int(re.search(rb"(\d+) packets? captured", said).group(1))
    dropped = int(re.search(rb"(\d+) packets? dropped by kernel", said).group(1))
    assert got["captures"][0]["packets"] == captured > 0
    seen = {s["client"]: s for s in got["sessions"]}
    assert seen and all(s["server"] == f"127.0.0.1:{port}" for s in seen.values())
    assert all("VMware Authentication Daemon" in json.dumps(s) for s in seen.values())
    if not dropped:
        assert set(clients) <= set(seen), (clients, list(seen))
