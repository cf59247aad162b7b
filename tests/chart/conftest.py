from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helmtools import find_helm


@pytest.fixture(scope="session")
def helm() -> Path:
    path = find_helm()
    if path is None:
        pytest.skip("helm not found: build the control-plane binaries (python -m gpu_steward_testground.build)")
    return path


@pytest.fixture(scope="module")
def kubectl(cluster: Any) -> Callable[..., str]:
    binary = Path(cluster.bin_dir) / "kubectl"

    def run(*args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run([str(binary), "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    return run
