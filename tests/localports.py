"""Helpers for tests that start real servers on loopback (x11vnc, Xtigervnc): pick a free port, wait for it."""

from __future__ import annotations

import socket
import time


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def free_port(candidates) -> int:
    """The first of ``candidates`` nothing listens on at 127.0.0.1 (bound and released to check)."""
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")
