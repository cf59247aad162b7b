"""Operator entry point: one Settings object, logged once, then kopf with our own storage keys.

``gpu-steward run`` calls ``run_operator()``. Tests and the demo start it as a subprocess with
``KUBECONFIG`` pointing at the local control plane, so killing it is a real operator restart.
kopf's bookkeeping uses keys under ``gpusteward.dev/`` (never colliding with another kopf operator
on the same objects), and admission webhooks are served over HTTPS when ``webhook_enabled``
(self-signed for local runs, a mounted certificate in a cluster).

One actor (DESIGN.md invariant 8; docs/ha.md). A process runs two kopf operators:

- the **webhook operator** (the admission handlers, their own registry) runs on every replica, in the
  main thread; it serves the liveness endpoint the chart probes, so "ready" means "can serve webhooks";
- the **acting operator** (the default registry: GPUBudget and ExperimentLease handlers, the watches
  that feed the index, and through its start-up handlers the idle and cost loops and the Slack
  interactions endpoint) runs in a thread of its own, and only while this replica holds the leader
  Lease (``gpu_steward.leadership``). It starts when the Lease is acquired and is told to stop the
  moment the renew deadline passes without a renewal, which is before any other replica may take the
  Lease. Every acting handler and loop pass also checks leadership first.

Why not kopf peering: replicas sharing a priority all pause ("Pausing all operators, including
self"), distinct priorities leave a dead leader's record blocking for its lifetime, our own loops and
endpoint cannot see kopf's pause, and a partitioned leader never pauses. Why not gate the handlers
inside one operator on every replica: kopf's change-detection handlers store their diff-base on every
replica that sees a change, so a standby that skipped a creation would mark it handled. An acting
operator that does not run at all on a standby has neither problem. Without a configured Lease name
(one replica: local demo and tests) the acting operator starts at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import kopf
import prometheus_client
import structlog

from gpu_steward import logs, memtrace
from gpu_steward.leadership import LeaseElector, mark_pod, new_identity
from gpu_steward.settings import Settings

log = structlog.get_logger(__name__)

# Modules whose import registers kopf handlers. Each is a thin layer over orchestration code.
HANDLER_MODULES: tuple[str, ...] = (
    "gpu_steward.handlers.watch",
    "gpu_steward.handlers.budget",
    "gpu_steward.handlers.lease",
    "gpu_steward.handlers.idle",
    "gpu_steward.handlers.slack",
)
# Admission handlers need a webhook server; they are registered only when one is configured, in their
# own registry (admission.REGISTRY), served by the webhook operator on every replica.
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
    if settings.webhook_cert_secret:
        from gpu_steward.kube import Kube, load_api_client
        from gpu_steward.webhook_certs import prepare

        service = settings.webhook_service or (host.split(".")[0] if host else "gpu-steward-webhook")
        configuration = None if settings.webhook_manage_configuration else settings.webhook_configuration_name
        d = prepare(Kube(load_api_client()), namespace=settings.platform_namespace,
                    secret=settings.webhook_cert_secret, service=service, configuration=configuration,
                    now=dt.datetime.now(dt.UTC), labels={"app.kubernetes.io/managed-by": "gpu-steward-operator"},
                    keep=True)
        return kopf.WebhookServer(addr=settings.webhook_listen_addr, port=settings.webhook_port, host=host,
                                  certfile=str(d / "tls.crt"), pkeyfile=str(d / "tls.key"), cafile=str(d / "ca.crt"))
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


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: Settings, *, webhooks: bool = True) -> None:
    # Change-detection handlers run only on our own three resources; their diff base and progress
    # live under our prefix.
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    # Per shard (sharded mode): each shard's diff base is its own, so no shard's record of what it handled can
    # stand for another's (kopf skips objects every handler's ``when`` filters out, so a shard writes only on
    # its own namespaces' objects), and after the number of shards changes a namespace's new owner sees its
    # budgets and leases as new and reconciles them at once.
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key=settings.shard().name("last-handled-configuration"))
    kopf_settings.persistence.finalizer = f"{STORAGE_PREFIX}/kopf-finalizer"
    kopf_settings.posting.level = logging.WARNING  # our Events are deliberate (notify/), not a log mirror
    kopf_settings.watching.server_timeout = 300
    kopf_settings.networking.request_timeout = 30
    # No kopf peering: the leader Lease decides which replica's acting operator runs (module docstring).
    kopf_settings.peering.standalone = True
    server = webhook_server(settings) if webhooks else None
    if server is not None:
        kopf_settings.admission.server = server
        if settings.webhook_manage_configuration:
            kopf_settings.admission.managed = settings.webhook_configuration_name


def _scope(settings: Settings) -> dict[str, Any]:
    namespaces = list(settings.namespaces)
    return {"clusterwide": not namespaces, "namespaces": namespaces}


class ActingOperator:
    """The kopf operator that acts (default registry), in a thread of its own: started on leadership,
    stopped on its loss or at shutdown. Each start gets a fresh index (the watches re-list)."""

    def __init__(self, settings: Settings, identity: str) -> None:
        self.settings = settings
        self.identity = identity
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        from gpu_steward.handlers.watch import start_watches
        from gpu_steward.index import Registry
        from gpu_steward.kube_watch import Watches
        from gpu_steward.runtime import get_runtime

        rt = get_runtime()
        shard = self.settings.shard()
        # A shard keeps only the GPU pods of the namespaces it owns (the others' are dropped as decoded).
        rt.index, rt.utilization = Registry(owns=shard.owns if shard.sharded else None), None
        # The watch-fed projections the passes read (pods, and each kind on first use); a new leader term
        # starts them afresh and the end of the term stops them.
        rt.watches = watches = Watches(rt.kube, page_size=self.settings.watch_page_size)
        memtrace.begin()  # a diagnostic, off unless asked for: what the watches and passes allocate from here
        start_watches(rt)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop, watches), name="gpu-steward-acting",
                                        daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event, watches: Any) -> None:
        ks = kopf.OperatorSettings()
        configure_kopf(ks, self.settings, webhooks=False)
        try:
            asyncio.run(kopf.operator(settings=ks, standalone=True, stop_flag=stop, memo=kopf.Memo(),
                                      identity=self.identity,
                                      **_scope(self.settings)))
        except Exception:
            log.exception("acting operator failed")
        finally:
            watches.stop()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


async def _watchdog(elector: LeaseElector, actor: ActingOperator, settings: Settings) -> None:
    """Stop acting the moment leadership lapses (the election round itself may hang on the API)."""
    rt_kube = _kube()
    while True:
        if actor.alive() and not actor.stopping() and not elector.leading():
            actor.stop()
            log.warning("leadership lost: stopping the acting operator", identity=elector.identity)
            await asyncio.to_thread(mark_pod, rt_kube, settings.pod_namespace, settings.pod_name, False)
        await asyncio.sleep(0.2)


async def _lead(elector: LeaseElector, actor: ActingOperator, settings: Settings) -> None:
    kube = _kube()
    await asyncio.to_thread(mark_pod, kube, settings.pod_namespace, settings.pod_name, False)
    log.info("standing by for the leader lease", identity=elector.identity,
             lease=f"{elector.namespace}/{elector.name}")
    watchdog = asyncio.create_task(_watchdog(elector, actor, settings))
    try:
        while True:
            leading = await asyncio.to_thread(elector.round)
            if leading and not actor.alive():  # (a stopping operator is let finish first)
                actor.start()
                log.info("leading: this replica acts", identity=elector.identity)
                await asyncio.to_thread(mark_pod, kube, settings.pod_namespace, settings.pod_name, True)
            await asyncio.sleep(settings.leader_election_retry_period_seconds)
    finally:
        watchdog.cancel()


def _kube() -> Any:
    from gpu_steward.runtime import get_runtime

    return get_runtime().kube


async def _serve(settings: Settings, registry: kopf.OperatorRegistry, elector: LeaseElector | None,
                 actor: ActingOperator, stop_flag: Any, ready_flag: Any) -> None:
    ks = kopf.OperatorSettings()
    configure_kopf(ks, settings)
    leading = asyncio.create_task(_lead(elector, actor, settings)) if elector is not None else None
    if elector is None:
        actor.start()
    try:
        await kopf.operator(registry=registry, settings=ks, standalone=True, identity=actor.identity,
                            liveness_endpoint=settings.liveness_endpoint, stop_flag=stop_flag,
                            ready_flag=ready_flag, **_scope(settings))
    finally:
        if leading is not None:
            leading.cancel()
        actor.stop()
        await asyncio.to_thread(actor.join, 30)
        if elector is not None:
            await asyncio.to_thread(elector.release)
            await asyncio.to_thread(mark_pod, _kube(), settings.pod_namespace, settings.pod_name, False)


def run_operator(settings: Settings | None = None, *, stop_flag: Any = None, ready_flag: Any = None) -> int:
    """Run until stopped (blocking). ``stop_flag``/``ready_flag`` as in ``kopf.operator`` (tests)."""
    from gpu_steward.runtime import build_runtime, set_runtime

    settings = settings or Settings()
    logs.configure(settings.log_format, settings.log_level)
    if memtrace.install():
        log.warning("tracemalloc on: allocations dumped on SIGUSR1", path=str(memtrace.dump_path()))
    rt = build_runtime(settings)
    set_runtime(rt)
    log.info("settings", **settings.redacted())
    import_handlers(ADMISSION_MODULES if settings.webhook_enabled else ())
    if settings.metrics_port:  # on every replica; only the leader's counters move
        prometheus_client.start_http_server(settings.metrics_port)
    # The webhook operator's registry: the admission handlers when webhooks are enabled, else none
    # (it still serves the liveness endpoint).
    from gpu_steward.handlers.admission import REGISTRY as registry
    # Named explicitly for kopf too: kopf's own default looks the uid up in /etc/passwd and crashes under
    # a uid without an entry (the image's 65532, OpenShift's arbitrary uids).
    identity = new_identity(settings.pod_name)
    elector = None
    if settings.leader_election_lease_name:
        # One Lease per shard (policy.shards): each shard has its own leader, one actor per namespace.
        elector = LeaseElector(rt.kube, settings.leader_election_namespace,
                               settings.shard().name(settings.leader_election_lease_name), identity,
                               settings.leader_election_timing())
        rt.is_leader = elector.leading
        from gpu_steward.budgets.metrics import COLLECTOR

        COLLECTOR.is_leader = elector.leading  # cost counters: only the replica that acts exports them
    asyncio.run(_serve(settings, registry, elector, ActingOperator(settings, identity), stop_flag, ready_flag))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_operator())
