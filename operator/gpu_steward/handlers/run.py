"""Operator entry point: one Settings object, logged once, then kopf with our own storage keys.

``gpu-steward run`` calls ``run_operator()``. Tests and the demo start it as a subprocess with
``KUBECONFIG`` pointing at the local control plane, so killing it is a real operator restart.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from typing import Any

import kopf
import structlog

from gpu_steward import logs
from gpu_steward.settings import Settings

log = structlog.get_logger(__name__)

# Modules whose import registers kopf handlers. Each is a thin layer over orchestration code.
HANDLER_MODULES: tuple[str, ...] = (
    "gpu_steward.handlers.context",
)

# kopf keeps a diff base and progress on the objects it handles with change-detection handlers.
# We use those only on our own resources, and under our own keys, so another kopf operator on the
# same objects never collides with us.
STORAGE_PREFIX = "gpusteward.dev"


def configure_kopf(settings: kopf.OperatorSettings, app: Settings) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{STORAGE_PREFIX}/finalizer"
    settings.posting.enabled = False  # our Events are deliberate (notify/), not kopf's log mirror
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 8


def load_handlers(extra: tuple[str, ...] = ()) -> None:
    for name in (*HANDLER_MODULES, *extra):
        importlib.import_module(name)


def run_operator(app: Settings | None = None) -> int:
    app = app or Settings()
    logs.configure(app.log_format, app.log_level)
    log.info("settings", **app.redacted())
    load_handlers()
    peering = os.environ.get("GPU_STEWARD_PEERING_NAME")
    liveness = os.environ.get("GPU_STEWARD_LIVENESS_ENDPOINT")
    kwargs: dict[str, Any] = {
        "clusterwide": not app.namespaces,
        "namespaces": list(app.namespaces),
        "liveness_endpoint": liveness,
        "memo": kopf.Memo(app_settings=app),
    }
    if peering:
        kwargs["peering_name"] = peering
    else:
        kwargs["standalone"] = True
    asyncio.run(kopf.operator(**kwargs))
    return 0
