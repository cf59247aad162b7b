"""Operator entry point: one Settings object, logged once, then kopf with our own storage keys.

``gpu-steward run`` calls ``run_operator()``. Tests and the demo start it as a subprocess with
``KUBECONFIG`` pointing at the local control plane, so killing it is a real operator restart.
kopf's bookkeeping uses keys under ``gpusteward.dev/`` (never colliding with another kopf operator
on the same objects), and admission webhooks are served over HTTPS when ``webhook_enabled``
(self-signed for local runs, a mounted certificate in a cluster).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import os
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf
import structlog

from gpu_steward import logs
from gpu_steward.settings import Settings

log = structlog.get_logger(__name__)

# Modules whose import registers kopf handlers. Each is a thin layer over orchestration code.
HANDLER_MODULES: tuple[str, ...] = (
    "gpu_steward.handlers.context",
    "gpu_steward.handlers.watch",
    "gpu_steward.handlers.budget",
    "gpu_steward.handlers.lease",
    "gpu_steward.handlers.idle",
    "gpu_steward.handlers.slack",
)
# Admission handlers need a webhook server; they are registered only when one is configured.
ADMISSION_MODULES: tuple[str, ...] = ("gpu_steward.handlers.admission",)
STORAGE_PREFIX = "gpusteward.dev"


def import_handlers(extra: tuple[str, ...] = ()) -> None:
    for module in (*HANDLER_MODULES, *extra):
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
    # Change-detection handlers run only on our own three resources; their diff base and progress
    # live under our prefix.
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-configuration")
    kopf_settings.persistence.finalizer = f"{STORAGE_PREFIX}/kopf-finalizer"
    kopf_settings.posting.level = logging.WARNING  # our Events are deliberate (notify/), not a log mirror
    kopf_settings.watching.server_timeout = 300
    kopf_settings.networking.request_timeout = 30
    # One ClusterKopfPeering (the Helm chart creates it) also when only some namespaces are
    # watched; kopf would otherwise look for a KopfPeering in each of them.
    kopf_settings.peering.clusterwide = True
    server = webhook_server(settings)
    if server is not None:
        kopf_settings.admission.server = server
        if settings.webhook_manage_configuration:
            kopf_settings.admission.managed = settings.webhook_configuration_name


def operator_identity(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> str:
    """The name this replica goes by in kopf's peering: the pod's name where the Downward API gives it.

    kopf's own fallback is ``getpass.getuser()``, which looks the uid up in /etc/passwd and crashes when
    the container runs under a uid without an entry (the image's 65532, OpenShift's random uids). The
    pod name is unique among the replicas, stable for the pod's life, and says who holds the peering;
    outside a pod the host name and process id are, and need no passwd entry either.
    """
    pod = environ.get("POD_NAME") or environ.get("POD_ID")
    if pod:
        return pod
    return f"gpu-steward@{socket.gethostname()}/{os.getpid() if pid is None else pid}"


def run_operator(settings: Settings | None = None, *, stop_flag: Any = None, ready_flag: Any = None) -> int:
    """Run until stopped (blocking). ``stop_flag``/``ready_flag`` as in ``kopf.operator`` (tests)."""
    from gpu_steward.runtime import build_runtime, set_runtime

    settings = settings or Settings()
    logs.configure(settings.log_format, settings.log_level)
    set_runtime(build_runtime(settings))
    log.info("settings", **settings.redacted())
    import_handlers(ADMISSION_MODULES if settings.webhook_enabled else ())
    namespaces = list(settings.namespaces)
    kwargs: dict[str, Any] = {
        "clusterwide": not namespaces, "namespaces": namespaces,
        "liveness_endpoint": settings.liveness_endpoint,
        "stop_flag": stop_flag, "ready_flag": ready_flag, "identity": operator_identity(),
    }
    if settings.peering_name:
        kwargs["peering_name"] = settings.peering_name
    else:
        kwargs["standalone"] = True
    asyncio.run(kopf.operator(**kwargs))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_operator())
