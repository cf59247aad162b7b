"""Start-up: build the shared context (settings, API client) once and put it in kopf's memo."""

from __future__ import annotations

from typing import Any

import kopf

from gpu_steward.handlers import run
from gpu_steward.kube import Kube, load_api_client
from gpu_steward.settings import Settings


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    app: Settings = memo.get("app_settings") or Settings()
    memo["app_settings"] = app
    run.configure_kopf(settings, app)
    memo["kube"] = Kube(load_api_client())
