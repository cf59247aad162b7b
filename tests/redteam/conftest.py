"""The red-team tests reuse the chart helpers (tests/chart) to render what `helm install` creates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "chart"))

from helmtools import find_helm


@pytest.fixture(scope="session")
def helm() -> Path:
    path = find_helm()
    if path is None:
        pytest.skip("helm not found: build the control-plane binaries (python -m gpu_steward_testground.build)")
    return path
