"""The processes a live-lab lane runs besides the clients: X displays, a VNC server, authd.

Why: MKS consoles in the live lab show a real desktop (protocol.md §4.3: the MKS stream is
RFB), so the authd server relays consoles (``--vnc``) to a real VNC server whose screen keeps
changing, and ``xtigervncviewer`` needs an X display on the client side. ``VncStack`` starts,
in the server namespace, either ``Xvfb`` + ``x11vnc`` or TigerVNC's ``Xvnc`` (X server and VNC
server in one), plus an ``xterm`` (typed keys echo, so keystrokes cause updates), a ticking
``xclock`` and a background colour that changes every few seconds. ``AuthdServer`` runs
``python -m dissect.port902.lab.server`` in the server namespace with a JSONL ``--log`` that
is part of the ground truth. ``read_pcap`` reads the capture tcpdump wrote (pcap, Ethernet /
Linux cooked v1 / v2) into per-connection facts for the labels — frame numbers, whether the
SYN was captured — from the capture's bytes, independently of ``dissect.port902``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

from .certs import host_cert
from .livenet import Lane
from .tlsbio import _pem_files

LINKS = {1: ("ethernet", 14), 113: ("sll", 16), 276: ("sll2", 20)}


_RESERVED: set[int] = set()
_RESERVE_LOCK = threading.Lock()


def free_display(start: int = 40) -> int:
    """An X display number with neither a lock file nor a socket (both are machine-wide files),
    never handed out twice by this process (lanes start their X servers at the same time)."""
    with _RESERVE_LOCK:
        for n in range(start, start + 400):
            if n not in _RESERVED and not os.path.exists(f"/tmp/.X{n}-lock") \
                    and not os.path.exists(f"/tmp/.X11-unix/X{n}"):
                _RESERVED.add(n)
                return n
    raise RuntimeError("no free X display number")


def _wait_for(path: str, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout} s")


def wait_port(lane: Lane, ns: str, host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until ``host:port`` accepts connections inside ``ns``."""
    code = (f"import socket,time\nt=time.time()+{timeout}\nwhile time.time()<t:\n try:\n  "
            f"socket.create_connection(({host!r},{port}),1).close();break\n except OSError: time.sleep(0.05)\n"
            "else: raise SystemExit(1)")
    if subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code]).returncode:
        raise RuntimeError(f"nothing listens on {host}:{port} in {ns}")


class XDisplay:
    """An ``Xvfb`` display inside a namespace (its socket file is visible from everywhere)."""

    def __init__(self, lane: Lane, ns: str, geometry: str = "1024x768x24"):
        self.number = free_display()
        self.name = f":{self.number}"
        self.proc = lane.spawn(ns, ["Xvfb", self.name, "-screen", "0", geometry, "-nolisten", "tcp", "-ac"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(f"/tmp/.X11-unix/X{self.number}", self.proc, 10, "Xvfb")


class VncStack:
    """A VNC server with a changing desktop in the server namespace, on 127.0.0.1:``port``."""

    def __init__(self, lane: Lane, kind: str = "x11vnc", port: int = 5900, geometry: str = "1024x768"):
        self.kind, self.port = kind, port
        ns = lane.server_ns
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if kind == "xvnc":
            self.number = free_display()
            self.display = f":{self.number}"
            proc = lane.spawn(ns, ["Xvnc", self.display, "-geometry", geometry, "-depth", "24", "-rfbport", str(port),
                                   "-SecurityTypes", "None", "-localhost", "-nolisten", "tcp", "-AlwaysShared"], **quiet)
            _wait_for(f"/tmp/.X11-unix/X{self.number}", proc, 10, "Xvnc")
        elif kind == "x11vnc":
            x = XDisplay(lane, ns, geometry + "x24")
            self.display = x.name
            lane.spawn(ns, ["x11vnc", "-display", self.display, "-rfbport", str(port), "-localhost", "-nopw",
                            "-forever", "-shared", "-quiet", "-noxdamage", "-wait", "20", "-defer", "20"], **quiet)
        else:
            raise ValueError(f"unknown VNC server {kind!r}")
        env = {**os.environ, "DISPLAY": self.display}
        lane.spawn(ns, ["xterm", "-geometry", "90x30+10+10", "-e", "sh", "-c", "while :; do cat; done"], env=env, **quiet)
        lane.spawn(ns, ["xclock", "-digital", "-update", "1", "-geometry", "+700+20"], env=env, **quiet)
        colours = " ".join(("'#204060'", "'#406020'", "'#602040'", "'#335577'", "'#775533'"))
        lane.spawn(ns, ["sh", "-c", f"while :; do for c in {colours}; do xsetroot -solid $c; sleep 3; done; done"],
                   env=env, **quiet)
        wait_port(lane, ns, "127.0.0.1", port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def cert_files(name: str) -> tuple[str, str, dict]:
    """PEM files of the lab's default-style certificate for ``name`` (generated once per process)."""
    cert = host_cert(name)
    crt, key = _pem_files(cert)
    return crt, key, {"name": name, "sha1": cert.sha1, "sha256": cert.sha256}


class AuthdServer:
    """``python -m dissect.port902.lab.server`` in the lane's server namespace."""

    def __init__(self, lane: Lane, workdir: str, *, persona: str, port: int, tls_min: str, tls_max: str,
                 cert_name: str, users: str, vnc: str | None, nfc_root: str, tag: str):
        crt, key, self.cert = cert_files(cert_name)
        self.log = os.path.join(workdir, f"{tag}.server.jsonl")
        ready = os.path.join(workdir, f"{tag}.ready")
        argv = [sys.executable, "-m", "dissect.port902.lab.server", "--listen", f"0.0.0.0:{port}",
                "--persona", persona, "--tls-min", tls_min, "--tls-max", tls_max, "--users", users,
                "--any-session", "--nfc-root", nfc_root, "--cert", crt, "--key", key, "--log", self.log,
                "--ready-file", ready, "--idle-timeout", "30"]
        if vnc:
            argv += ["--vnc", vnc]
        self.lane = lane
        self.stderr = open(os.path.join(workdir, f"{tag}.server.err"), "w")
        self.proc = lane.spawn(lane.server_ns, argv, stdout=subprocess.DEVNULL, stderr=self.stderr)
        _wait_for(ready, self.proc, 20, "authd server")
        self.persona, self.port = persona, port

    def stop(self) -> list[dict]:
        """SIGTERM (the server flushes its log), then the log's records."""
        Lane.stop(self.proc, wait=8.0)
        self.stderr.close()
        if not os.path.exists(self.log):
            return []
        with open(self.log, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


# -- the capture's own facts ---------------------------------------------------------------------------

def _key(a_ip: str, a_port: int, b_ip: str, b_port: int) -> tuple:
    return tuple(sorted(((a_ip, a_port), (b_ip, b_port))))


def read_pcap(path: str) -> dict:
    """Per-connection frames of a classic pcap: ``{"link", "packets", "first_ts", "end_ts", "flows"}``.

    ``flows`` maps a direction-agnostic endpoint key to ``{"first", "last", "count", "syn",
    "first_ts", "last_ts", "times"}`` (frame numbers 1-based; ``syn``: a SYN without ACK was
    captured, i.e. the capture saw the connection open).
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file")
    magic = data[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0xFFFF
    if linktype not in LINKS:
        raise ValueError(f"{path}: link type {linktype} not handled")
    link, offset = LINKS[linktype]
    flows: dict = {}
    pos, number, first_ts, last_ts = 24, 0, None, None
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(order + "IIII", data[pos:pos + 16])
        frame = data[pos + 16: pos + 16 + caplen]
        pos += 16 + caplen
        number += 1
        ts = sec + frac / (1e9 if nano else 1e6)
        first_ts = ts if first_ts is None else first_ts
        last_ts = ts
        proto_field = {"ethernet": (12, 14), "sll": (14, 16), "sll2": (0, 2)}[link]
        if frame[proto_field[0]:proto_field[1]] != b"\x08\x00":
            continue
        ip = frame[offset:]
        if len(ip) < 20 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        if len(ip) < ihl + 14:
            continue
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        flags = ip[ihl + 13]
        info = flows.setdefault(_key(src, sport, dst, dport), {"first": number, "count": 0, "syn": False,
                                                                "first_ts": ts, "times": []})
        info["last"], info["last_ts"] = number, ts
        info["count"] += 1
        info["times"].append((ts, number))
        if flags & 0x02 and not flags & 0x10:
            info["syn"] = True
    return {"link": link, "linktype": linktype, "packets": number, "first_ts": first_ts, "end_ts": last_ts,
            "flows": flows}
