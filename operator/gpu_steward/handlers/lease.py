"""kopf decorators for ExperimentLeases — thin: they call gpu_steward.budgets.lease."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.budgets.lease import reconcile_lease
from gpu_steward.handlers import loops
from gpu_steward.runtime import configured_settings, get_runtime

_INTERVAL = configured_settings().evaluation_interval_seconds


# Sharded mode: a lease is reconciled by the shard that owns its namespace only (loops.owned).
@kopf.on.create(GROUP, VERSION, "experimentleases", when=loops.owned)
@kopf.on.update(GROUP, VERSION, "experimentleases", field="spec", when=loops.owned)
@kopf.timer(GROUP, VERSION, "experimentleases", interval=_INTERVAL, initial_delay=1.0, when=loops.owned)
def lease_reconcile(namespace: str, name: str, **_: Any) -> None:
    loops.require_leader()
    rt = get_runtime()
    lease = loops.current(f"{GROUP}/{VERSION}", "ExperimentLease", name, namespace)
    if lease is None:
        return
    # One lease of a namespace at a time: the fast lane's per-owner / per-namespace caps count the
    # namespace's other leases, so two activating together must not both see room for one.
    with rt.serialized(f"experimentleases/{namespace}"):
        reconcile_lease(rt.kube, rt.settings, lease, dt.datetime.now(dt.UTC), rt.notifier, book=rt.requests)
