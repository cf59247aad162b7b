"""Start-up: configure kopf from the one Settings object (built once, shared by every handler)."""

from __future__ import annotations

from typing import Any

import kopf
import prometheus_client

from gpu_steward.handlers import run
from gpu_steward.runtime import get_runtime


@kopf.on.startup(id="gpusteward-configure")
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    app = get_runtime().settings
    run.configure_kopf(settings, app)
    if app.metrics_port:
        prometheus_client.start_http_server(app.metrics_port)
