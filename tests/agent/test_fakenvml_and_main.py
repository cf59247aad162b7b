"""The fake NVML's state writer, and the agent's command line when misconfigured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_steward_testground import fakenvml


def test_state_renders_the_keys_the_c_library_parses() -> None:
    text = fakenvml.render_state(
        {
            "initError": "LIB_RM_VERSION_MISMATCH",
            "gpus": [
                fakenvml.gpu(
                    3,
                    util=7,
                    error="GPU_IS_LOST",
                    processUtil=False,
                    processes=[{"pid": 5, "usedMemory": 9, "smUtil": 1}],
                )
            ],
        }
    )
    lines = set(text.splitlines())
    assert {
        "init_error=LIB_RM_VERSION_MISMATCH",
        "gpu.count=1",
        "gpu.0.util=7",
        "gpu.0.error=GPU_IS_LOST",
        "gpu.0.procutil=0",
        "gpu.0.proc.count=1",
        "gpu.0.proc.0.pid=5",
        "gpu.0.proc.0.sm=1",
    } <= lines
    assert "gpu.0.uuid=GPU-00000003-0000-4000-8000-000000000003" in lines


def test_newlines_in_values_are_refused() -> None:
    with pytest.raises(ValueError, match="newline"):
        fakenvml.render_state({"gpus": [fakenvml.gpu(0, name="A\nB")]})


def test_write_state_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state"
    fakenvml.write_state(path, {"gpus": []})
    first = path.stat().st_ino
    fakenvml.write_state(path, {"gpus": [fakenvml.gpu(0)]})
    assert path.stat().st_ino != first  # a new inode: the library notices even within one mtime tick
    assert "gpu.count=1" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["state"]


def test_build_reports_compiler_errors(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="cannot run the C compiler"):
        fakenvml.build(tmp_path, cc=str(tmp_path / "no-such-cc"))
    with pytest.raises(RuntimeError, match="building the fake NVML library failed"):
        fakenvml.build(tmp_path, cc="false")  # a "compiler" that fails


def test_bad_configuration_exits_2_naming_the_variable() -> None:
    env = {**os.environ, "GPU_STEWARD_AGENT_INTERVAL_SECONDS": "soon"}
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_steward_agent"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "GPU_STEWARD_AGENT_INTERVAL_SECONDS must be a number" in proc.stderr
