"""MKS console client for the live lab: authd hand-off, TLS #2, then a real VNC viewer through a local proxy.

Why: an MKS session's shape on the wire comes from the RFB traffic of a real viewer against a
real VNC server (FramebufferUpdateRequests, update bursts, key and pointer events, idle
stretches), which the in-process lab only models. This client does what VMRC-era consoles and
esxclient do (protocol.md §4.2, §4.3):

1. banner, TLS #1, ``USER <ticket>`` / ``PASS <ticket>`` (UUID-shaped ticket, §4.1),
   ``THUMBPRINT <base64 of 12 random bytes>`` → ``200 <sha1>``, ``CONNECT <vmx> mks`` →
   ``200 Connect <vmx>``;
2. TLS #1 abandoned without close_notify, a new TLS handshake on the raw stream, pinned to the
   SHA-1 from step 1, the 16-char token as its first application data;
3. a local listener on 127.0.0.1 that a real viewer connects to. If the MKS stream starts with
   an RFB ProtocolVersion the bytes are relayed untouched; if it starts with a ServerInit (what
   §4.3 infers for ESXi) the proxy plays the RFB opening towards the viewer itself — version
   3.8, security type None, SecurityResult OK, ClientInit consumed — as esxclient does.

Viewers: ``vncdotool`` (Python RFB client driven through its API: typing, mouse moves and
clicks, screen refreshes) or ``tigervnc`` (``xtigervncviewer`` on an X display, driven with
``xdotool``; it keeps an update request outstanding like any desktop viewer). Uses:
``interactive`` (typing bursts, mouse, pauses), ``idle`` (console open, nobody touching it),
``quick`` (opened, first screen drawn, closed).
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import threading
import time

from . import authd
from .livewire import Wire, WireError, client_context

FAKE_OPENING_VERSION = b"RFB 003.008\n"
WORDS = ("ls -l", "uptime", "df -h", "cat /etc/hosts", "ping -c 1 gw", "whoami", "top", "dir", "ipconfig",
         "systemctl status sshd", "tail -f /var/log/messages", "exit")


class Relay(threading.Thread):
    """Copies RFB bytes between the viewer's socket and TLS #2 until either side closes."""

    def __init__(self, wire: Wire, viewer: socket.socket):
        super().__init__(daemon=True)
        self.wire, self.viewer = wire, viewer
        self.stop = threading.Event()
        self.to_viewer = self.to_server = 0
        self.ended_by = None

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.wire.sock, selectors.EVENT_READ, "server")
        sel.register(self.viewer, selectors.EVENT_READ, "viewer")
        try:
            while not self.stop.is_set():
                for key, _ in sel.select(0.2):
                    if key.data == "server":
                        data = self.wire.recv_some()
                        if not data:
                            self.ended_by = "server"
                            return
                        self.viewer.sendall(data)
                        self.to_viewer += len(data)
                    else:
                        data = self.viewer.recv(65536)
                        if not data:
                            self.ended_by = "viewer"
                            return
                        self.wire.send(data)
                        self.to_server += len(data)
        except (OSError, EOFError) as exc:
            self.ended_by = f"error: {exc}"
        finally:
            sel.close()


def _fake_opening(viewer: socket.socket) -> None:
    """The RFB opening a ServerInit-first MKS stream lacks, played towards the viewer."""
    viewer.sendall(FAKE_OPENING_VERSION)
    _recv_exact(viewer, 12)                      # the viewer's ProtocolVersion
    viewer.sendall(b"\x01\x01")                  # one security type: None
    _recv_exact(viewer, 1)
    viewer.sendall(b"\0\0\0\0")                  # SecurityResult OK
    _recv_exact(viewer, 1)                       # ClientInit (shared flag)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("viewer closed during the RFB opening")
        out += chunk
    return out


# -- viewers ------------------------------------------------------------------------------------------

class VncdotoolViewer:
    """vncdotool's RFB client in this process (its reactor runs in a thread)."""

    name = "vncdotool"

    def __init__(self, port: int, timeout: float):
        from vncdotool import api
        self.api = api
        self.client = api.connect(f"127.0.0.1::{port}", password=None, timeout=timeout)

    def refresh(self) -> None:
        self.client.refreshScreen(incremental=True)

    def first_screen(self) -> None:
        self.client.refreshScreen(incremental=False)

    def type_text(self, text: str, pace) -> None:
        for ch in text:
            self.client.keyPress("space" if ch == " " else ch)
            time.sleep(pace("keystroke"))
        self.client.keyPress("enter")

    def mouse(self, rng, moves: int, click: bool) -> None:
        x, y = rng.randrange(50, 600), rng.randrange(50, 400)
        for _ in range(moves):
            x, y = max(0, x + rng.randint(-40, 40)), max(0, y + rng.randint(-30, 30))
            self.client.mouseMove(x, y)
            time.sleep(rng.uniform(0.008, 0.03))
        if click:
            self.client.mousePress(1)

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.api.shutdown()


class TigerViewer:
    """``xtigervncviewer`` on an X display, typed into with ``xdotool``."""

    name = "tigervnc"

    def __init__(self, port: int, display: str, timeout: float):
        if not display:
            raise WireError("tigervnc viewer needs --display")
        self.env = {**os.environ, "DISPLAY": display}
        self.proc = subprocess.Popen(
            ["xtigervncviewer", "-SecurityTypes", "None", "-Shared", "-AlertOnFatalError=0",
             "-ReconnectOnError=0", f"127.0.0.1::{port}"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.window = None
        deadline = time.time() + timeout
        while time.time() < deadline and self.window is None and self.proc.poll() is None:
            found = subprocess.run(["xdotool", "search", "--name", "TigerVNC"], env=self.env,
                                   capture_output=True, text=True)
            ids = found.stdout.split()
            self.window = ids[-1] if ids else None
            if self.window is None:
                time.sleep(0.1)

    def _xdo(self, *args: str) -> None:
        if self.window is not None and self.proc.poll() is None:
            subprocess.run(["xdotool", *args], env=self.env, capture_output=True)

    def refresh(self) -> None:
        time.sleep(0.2)                           # the viewer keeps an update request outstanding

    def first_screen(self) -> None:
        time.sleep(0.3)

    def type_text(self, text: str, pace) -> None:
        self._xdo("windowfocus", "--sync", self.window)
        self._xdo("type", "--delay", str(int(1000 * pace("keystroke"))), text)
        self._xdo("key", "Return")

    def mouse(self, rng, moves: int, click: bool) -> None:
        for _ in range(moves):
            self._xdo("mousemove", "--window", self.window, str(rng.randrange(20, 600)), str(rng.randrange(20, 400)))
            time.sleep(rng.uniform(0.01, 0.04))
        if click:
            self._xdo("click", "1")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the session ------------------------------------------------------------------------------------

def _use(viewer, s, seconds: float) -> dict:
    """Drive the viewer for ``seconds`` the way ``--use`` says; returns what was done."""
    rng, use = s.rng, s.args.use
    done = {"typed": 0, "moves": 0, "clicks": 0, "refreshes": 0}
    viewer.first_screen()
    if use == "quick":
        return done
    end = time.time() + seconds
    while time.time() < end:
        if use == "idle" or rng.random() < 0.35:
            time.sleep(min(rng.uniform(0.3, 1.2), max(0.0, end - time.time())))
            viewer.refresh()
            done["refreshes"] += 1
        elif rng.random() < 0.55:
            word = rng.choice(WORDS)
            viewer.type_text(word, s.pace)
            done["typed"] += len(word) + 1
        else:
            moves, click = rng.randint(3, 15), rng.random() < 0.5
            viewer.mouse(rng, moves, click)
            done["moves"] += moves
            done["clicks"] += click
    return done


def run_mks(s) -> None:
    """One console session (see the module docstring); recorded through ``s.done``."""
    a = s.args
    wire = s.connect()
    wire.greet(s.ctx, s.sni())
    ticket, token = authd.ticket(s.rng), authd.client_token(s.rng)
    vmx = authd.datastore_path(s.rng, a.vm)
    wire.mark("user")
    wire.command(f"USER {ticket}", "331")
    wire.command(f"PASS {ticket}", "230")
    wire.mark("thumbprint")
    pin = wire.command(f"THUMBPRINT {token}", "200")[4:].strip()
    wire.mark("connect")
    reply = wire.command(f"CONNECT {vmx} mks", "200")
    wire.abandon_tls()
    wire.mark("handoff")
    info = wire.start_tls(client_context(a.tls_max, a.tls_min), None, "tls2")
    if info["cert_sha1"] != pin:
        raise WireError(f"TLS #2 certificate {info['cert_sha1']} is not the one announced ({pin})")
    wire.send(token.encode())
    wire.mark("mks_token")
    wire.sock.settimeout(a.timeout)
    first = wire.recv_some()
    if not first:
        raise WireError("MKS stream closed right after the token")
    passthrough = first.startswith(b"RFB ")
    wire.mark("rfb_first_bytes")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(a.timeout)
    port = listener.getsockname()[1]
    holder: dict = {}

    def start_viewer() -> None:
        try:
            holder["viewer"] = (VncdotoolViewer(port, a.timeout) if a.viewer == "vncdotool"
                                else TigerViewer(port, a.display, a.timeout))
        except Exception as exc:          # surfaces below as the session's error
            holder["error"] = exc

    starter = threading.Thread(target=start_viewer, daemon=True)
    starter.start()                       # vncdotool's connect blocks until the RFB opening is done
    viewer_sock, _ = listener.accept()
    listener.close()
    if not passthrough:
        _fake_opening(viewer_sock)
    viewer_sock.sendall(first)
    relay = Relay(wire, viewer_sock)
    relay.start()
    starter.join(a.timeout)
    if "error" in holder or "viewer" not in holder:
        relay.stop.set()
        raise WireError(f"viewer did not start: {holder.get('error')}")
    viewer = holder["viewer"]
    wire.mark("console")
    try:
        done = _use(viewer, s, a.seconds)
    finally:
        viewer.close()
    relay.join(2.0)
    relay.stop.set()
    relay.join(2.0)
    viewer_sock.close()
    outcome = "closed" if relay.ended_by == "server" else wire.close(a.end)
    s.done(wire, outcome, feature="MKS", login="ok", login_kind="ticket", login_attempts=1, users=[ticket],
           command="CONNECT", target=vmx, reply=reply,
           traffic={"model": "console-live", "style": a.use, "viewer": viewer.name, "seconds": a.seconds,
                    "rfb_opening": "relayed" if passthrough else "proxy", "to_viewer": relay.to_viewer,
                    "to_server": relay.to_server, "ended_by": relay.ended_by, **done, "end": a.end})
