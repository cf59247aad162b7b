from __future__ import annotations

from pathlib import Path

import pytest
from helmtools import find_helm


@pytest.fixture(scope="session")
def helm() -> Path:
    path = find_helm()
    if path is None:
        pytest.skip("helm not found: build the control-plane binaries (python -m gpu_steward.localcluster.build)")
    return path
