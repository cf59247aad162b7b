"""The operator's entry point: register every handlers module, configure kopf, run.

Written minimally by the budget/lease work (issue 6); the lead's version may replace it. What it
guarantees: kopf's own bookkeeping uses keys under ``gpusteward.dev/`` (never colliding with
another kopf operator on the same objects), and the admission webhooks are served over HTTPS when
``webhook_enabled`` (self-signed for local runs, mounted certificate in a cluster).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import kopf

from gpu_steward.settings import Settings

HANDLER_MODULES = ("gpu_steward.handlers.budget", "gpu_steward.handlers.lease", "gpu_steward.handlers.admission")
MANAGED_WEBHOOK_NAME = "gpusteward.dev"


def import_handlers() -> None:
    for module in HANDLER_MODULES:
        importlib.import_module(module)


def webhook_server(settings: Settings) -> kopf.WebhookServer | None:
    if not settings.webhook_enabled:
        return None
    host = settings.webhook_host or ("127.0.0.1" if settings.webhook_listen_addr in ("0.0.0.0", "") else
                                     settings.webhook_listen_addr)
    if settings.webhook_cert_dir:
        d = Path(settings.webhook_cert_dir)
        ca = d / "ca.crt" if (d / "ca.crt").exists() else d / "tls.crt"
        return kopf.WebhookServer(addr=settings.webhook_listen_addr, port=settings.webhook_port, host=host,
                                  certfile=str(d / "tls.crt"), pkeyfile=str(d / "tls.key"), cafile=str(ca))
    from gpu_steward.tls import self_signed

    d = Path(tempfile.mkdtemp(prefix="gpu-steward-webhook-"))
    certfile, keyfile = self_signed(d, [host, "localhost", "127.0.0.1"], dt.datetime.now(dt.UTC))
    return kopf.WebhookServer(addr=settings.webhook_listen_addr, port=settings.webhook_port, host=host,
                              certfile=str(certfile), pkeyfile=str(keyfile), cafile=str(certfile))


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="gpusteward.dev")
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="gpusteward.dev", key="last-handled-configuration")
    kopf_settings.persistence.finalizer = "gpusteward.dev/kopf-finalizer"
    kopf_settings.posting.level = logging.WARNING
    server = webhook_server(settings)
    if server is not None:
        kopf_settings.admission.server = server
        kopf_settings.admission.managed = MANAGED_WEBHOOK_NAME


_configured: dict[str, Settings] = {}


def _register_configure(settings: Settings) -> None:
    _configured["settings"] = settings  # the latest run's settings win (tests run it more than once)
    if len(_configured) > 1:
        return
    _configured["registered"] = settings

    @kopf.on.startup(id="gpusteward-configure")
    def _configure(**kwargs: Any) -> None:
        configure_kopf(kwargs["settings"], _configured["settings"])


def run_operator(settings: Settings | None = None, *, stop_flag: Any = None, ready_flag: Any = None) -> int:
    """Run until stopped (blocking). ``stop_flag``/``ready_flag`` as in ``kopf.operator`` (tests)."""
    settings = settings or Settings()
    import_handlers()
    _register_configure(settings)
    namespaces = list(settings.namespaces)
    asyncio.run(kopf.operator(
        clusterwide=not namespaces, namespaces=namespaces or None, standalone=True,
        stop_flag=stop_flag, ready_flag=ready_flag,
    ))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_operator())
