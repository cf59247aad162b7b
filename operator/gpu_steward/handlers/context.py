"""Start-up: configure kopf from the one Settings object (built once, shared by every handler)."""

from __future__ import annotations

from typing import Any

import kopf

from gpu_steward.budgets.runtime import get_runtime
from gpu_steward.handlers import run


@kopf.on.startup(id="gpusteward-configure")
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    run.configure_kopf(settings, get_runtime().settings)
