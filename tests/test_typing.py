"""The core stages type-check: plain ``mypy`` from the repo root reports no errors (issue 15).

What it checks, and how, is ``[tool.mypy]`` in pyproject.toml: ``io/``, ``net/``, ``proto/`` and
``model/``. The cache is mypy's default ``.mypy_cache`` in the repo root (git-ignored), so only the
first run is slow.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_reports_no_errors(monkeypatch):
    monkeypatch.chdir(ROOT)  # mypy reads pyproject.toml and resolves its files from the working directory
    stdout, stderr, status = api.run([])
    assert status == 0, f"mypy found errors:\n{stdout}{stderr}"
    assert stdout.startswith("Success: no issues found"), stdout
