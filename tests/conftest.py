"""Shared fixtures: sample paths, tshark / third-party tool availability (forced on in CI), and a
running lab authd server (``dissect.port902.lab.server``) as a real subprocess."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def _missing_tools(item) -> list[str]:
    names = [n for mark in item.iter_markers("tools") for n in mark.args]
    return [n for n in names if not shutil.which(n)]


def pytest_collection_modifyitems(config, items):
    """tshark tests skip only when tshark is missing AND DISSECT902_REQUIRE_TSHARK is unset;
    ``tools(...)`` tests skip only when one of their programs is missing AND
    DISSECT902_REQUIRE_TOOLS is unset (CI sets both, so a missing program fails the run)."""
    if not shutil.which("tshark"):
        if os.environ.get("DISSECT902_REQUIRE_TSHARK"):
            raise pytest.UsageError("DISSECT902_REQUIRE_TSHARK is set but tshark is not installed")
        skip = pytest.mark.skip(reason="tshark not installed (set DISSECT902_REQUIRE_TSHARK=1 to fail instead)")
        for item in items:
            if "tshark" in item.keywords:
                item.add_marker(skip)
    for item in items:
        missing = _missing_tools(item)
        if not missing:
            continue
        if os.environ.get("DISSECT902_REQUIRE_TOOLS"):
            raise pytest.UsageError(f"DISSECT902_REQUIRE_TOOLS is set but {', '.join(missing)} "
                                    f"is not installed (scripts/debian-packages.txt)")
        item.add_marker(pytest.mark.skip(reason=f"{', '.join(missing)} not installed "
                                                "(set DISSECT902_REQUIRE_TOOLS=1 to fail instead)"))


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


class AuthdServer:
    """A lab authd server subprocess; ``records()`` reads its ground-truth JSONL log."""

    def __init__(self, workdir: Path, args: list[str], prefix: tuple[str, ...] = ()):
        self.workdir = workdir
        self.log_path = workdir / "server.jsonl"
        self.ready = workdir / "server.ready"
        self.stderr_path = workdir / "server.stderr"
        cmd = [*prefix, sys.executable, "-m", "dissect.port902.lab.server", "--ready-file", str(self.ready),
               "--log", str(self.log_path), *args]
        if "--listen" not in args:
            cmd += ["--listen", "127.0.0.1:0"]
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr, cwd=ROOT)
        deadline = time.monotonic() + 20
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"lab server did not start: {self.stderr_path.read_text()}")
            time.sleep(0.02)
        address = self.ready.read_text().strip()
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)

    def records(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(x) for x in self.log_path.read_text().splitlines() if x.strip()]

    def wait_records(self, count: int, timeout: float = 10.0) -> list[dict]:
        """The log once it holds at least ``count`` records (connections are logged when they end)."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records()
            if len(recs) >= count or time.monotonic() > deadline:
                return recs
            time.sleep(0.02)

    def stop(self) -> list[dict]:
        """SIGTERM (live connections are ended and logged), wait, and return the whole log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.records()


@pytest.fixture
def authd_server(tmp_path):
    """Factory: ``authd_server("--persona", "esxi8", ...)`` starts a server; all are stopped after.
    ``prefix`` runs it under another command (``ip netns exec NS``)."""
    started: list[AuthdServer] = []

    def start(*args: str, prefix: tuple[str, ...] = ()) -> AuthdServer:
        workdir = tmp_path / f"server{len(started)}"
        workdir.mkdir()
        server = AuthdServer(workdir, [str(a) for a in args], prefix)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        assert server.proc.returncode == 0, f"server exited with {server.proc.returncode}: " \
                                            f"{server.stderr_path.read_text()}"
