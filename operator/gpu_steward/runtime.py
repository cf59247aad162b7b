"""The operator process's shared parts: settings, Kube, notifier, cost ledger, the watch-fed index of
GPU pods and IdlePolicies, and the one utilization source both evaluation loops read. Built once
(lazily, or by ``set_runtime`` in run.py / tests)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gpu_steward.budgets.costs import CostLedger, UtilizationLookup
from gpu_steward.budgets.history import PREFIX, CostHistory
from gpu_steward.budgets.notifier import EventNotifier, FanOut, Notifier, SlackBridge
from gpu_steward.budgets.requests import RequestBook
from gpu_steward.budgets.writes import WriteBudget
from gpu_steward.index import Registry
from gpu_steward.kube import Kube, load_api_client
from gpu_steward.kube_watch import Watches
from gpu_steward.settings import Settings
from gpu_steward.sources.base import UtilizationSource
from gpu_steward.sources.factory import make_source


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    notifier: Notifier
    ledger: CostLedger
    source: UtilizationSource | None = None  # agents or Prometheus: one HTTP session for both loops
    utilization: UtilizationLookup | None = None
    index: Registry = field(default_factory=Registry)  # GPU pods and IdlePolicies, fed by handlers.watch
    # The watch-fed projections the passes read (kube_watch): set while this replica acts (handlers/run.py).
    watches: Watches | None = None
    # The cluster-wide cost-annotation write budget, kept across cost passes (budgets.writes).
    cost_budget: WriteBudget | None = None
    # Budgets' and leases' suspension requests under the global dry-run (otherwise in their records).
    requests: RequestBook = field(default_factory=RequestBook)
    # Whether this replica may act now (leader election; always True without it). The loops and the
    # kopf handlers check it before acting, besides running only on the leader at all.
    is_leader: Callable[[], bool] = field(default=lambda: True)
    # The settled cost history (budgets.history), loaded on the first cost pass of the leader.
    history: CostHistory | None = None
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def serialized(self, uid: str) -> Iterator[None]:
        """One reconcile per object at a time (a timer and a spec change may fire together)."""
        with self._guard:
            lock = self._locks.setdefault(uid, threading.Lock())
        with lock:
            yield


_runtime: Runtime | None = None
_lock = threading.Lock()


def build_runtime(settings: Settings | None = None, kubeconfig: str | None = None) -> Runtime:
    settings = settings or Settings()
    kube = Kube(load_api_client(kubeconfig))
    notifier = FanOut([EventNotifier(kube), SlackBridge(kube, settings)])
    return Runtime(settings, kube, notifier, CostLedger(settings.cost_idle_util_percent),
                   source=make_source(kube, settings),
                   history=cost_history(kube, settings))


def cost_history(kube: Kube, settings: Settings) -> CostHistory:
    """The leader's cost history; in sharded mode this shard's part of it (``policy.shards``)."""
    shard = settings.shard()
    return CostHistory(kube, settings.platform_namespace, dry_run=settings.dry_run,
                       seen_flush=dt.timedelta(seconds=settings.cost_annotation_min_interval_seconds),
                       prefix=shard.name(PREFIX), owns=shard.owns if shard.sharded else None)


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime()
        return _runtime


def configured_settings() -> Settings:
    """The running operator's settings (run.py sets the runtime before importing handlers), else the
    environment's: handler modules decide at import what to register (timer intervals, webhooks)."""
    with _lock:
        return _runtime.settings if _runtime is not None else Settings()


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    with _lock:
        _runtime = runtime
