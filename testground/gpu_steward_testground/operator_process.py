"""Run the operator as a real process against the local control plane (tests, demo, benchmarks).

A separate process is the honest way to test restarts: ``kill()`` is SIGKILL, no clean-up code runs,
and the next ``start()`` must pick up from what the cluster holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_steward_testground.processes import die_with_parent, stop_process


@dataclass
class OperatorProcess:
    kubeconfig: Path
    log_path: Path
    settings: dict[str, Any] = field(default_factory=dict)  # Settings field -> value (GPU_STEWARD_*)
    popen: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        # No fixed metrics port unless a caller asks for one: several operators may run on this machine.
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), PYTHONUNBUFFERED="1", GPU_STEWARD_METRICS_PORT="0")
        for key, value in self.settings.items():
            env[f"GPU_STEWARD_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return env

    def start(self) -> OperatorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.popen = subprocess.Popen([sys.executable, "-m", "gpu_steward.cli", "run"], env=self.env(), stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        log.close()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.popen)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
