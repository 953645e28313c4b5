"""Shared fixtures: sample paths, tshark availability (forced on in CI)."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def pytest_collection_modifyitems(config, items):
    """tshark tests skip only when tshark is missing AND DISSECT902_REQUIRE_TSHARK is unset."""
    if shutil.which("tshark"):
        return
    if os.environ.get("DISSECT902_REQUIRE_TSHARK"):
        raise pytest.UsageError("DISSECT902_REQUIRE_TSHARK is set but tshark is not installed")
    skip = pytest.mark.skip(reason="tshark not installed (set DISSECT902_REQUIRE_TSHARK=1 to fail instead)")
    for item in items:
        if "tshark" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES
