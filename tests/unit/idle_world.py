"""An in-memory cluster for controller-level idle tests: the real IdleController, Registry and adapters
over a fake Kube (merge patches, Events, failures on demand) and a fake utilization source and Slack."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpu_steward.idle.controller import IdleController
from gpu_steward.index import Registry
from gpu_steward.policy.store_codec import Entry, decode_entry, entry_key
from gpu_steward.policy.usage import Usage
from gpu_steward.settings import Settings
from gpu_steward.sources.base import PodRef
from gpu_steward.store import STORE_LABEL
from gpu_steward.workloads.adapters import apply_merge_patch
from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
NS = "ml"
POLICY = "gpusteward.dev/v1alpha1"


class ApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class Killed(BaseException):
    """The operator process dies here (SIGKILL): nothing after it runs."""


@dataclass
class FakeKube:
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (kind, name, body)
    event_ok: bool = True
    # (kind, name, body) -> an exception to raise instead of patching, or None
    fail_patch: Callable[[str, str, dict[str, Any]], BaseException | None] | None = None
    kill_after_patch: Callable[[str, str, dict[str, Any]], bool] | None = None

    def add(self, obj: dict[str, Any], namespaced: bool = True) -> dict[str, Any]:
        meta = obj["metadata"]
        meta.setdefault("namespace", NS if namespaced else "")
        meta.setdefault("uid", f"uid-{obj['kind']}-{meta['name']}")
        meta.setdefault("resourceVersion", "1")
        self.objects[(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def obj(self, api_version: str, kind: str, name: str, namespace: str = NS) -> dict[str, Any]:
        return self.objects[(api_version, kind, namespace, name)]

    def get_optional(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        found = self.objects.get((api_version, kind, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None

    get = get_optional

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        out = []
        for (av, k, ns, _), obj in self.objects.items():
            if (av, k) != (api_version, kind) or (namespace and ns != namespace):
                continue
            if label_selector:
                key, value = label_selector.split("=")
                if ((obj["metadata"].get("labels") or {}).get(key)) != value:
                    continue
            out.append(copy.deepcopy(obj))
        return out

    list_optional = list

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: dict[str, Any], *,
              dry_run: bool, subresource: str | None = None) -> Any:
        assert not dry_run
        if self.fail_patch is not None and (exc := self.fail_patch(kind, name, body)) is not None:
            raise exc
        key = (api_version, kind, namespace or "", name)
        if key not in self.objects:
            raise ApiError(404)
        body = copy.deepcopy(body)
        rv = (body.get("metadata") or {}).pop("resourceVersion", None)
        current = self.objects[key]["metadata"].get("resourceVersion", "1")
        if rv is not None and rv != current:  # a conditional patch over a stale read, as the API server
            raise ApiError(409)
        self.objects[key] = apply_merge_patch(self.objects[key], body)
        self.objects[key]["metadata"]["resourceVersion"] = str(int(current) + 1)
        self.patches.append((kind, name, body))
        if self.kill_after_patch is not None and self.kill_after_patch(kind, name, body):
            raise Killed()
        return self.objects[key]

    def create(self, body: dict[str, Any], *, dry_run: bool) -> Any:
        assert not dry_run
        meta = body["metadata"]
        key = (body["apiVersion"], body["kind"], meta.get("namespace") or "", meta["name"])
        if key in self.objects:
            raise ApiError(409)
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = "1"
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def replace(self, body: dict[str, Any], *, dry_run: bool) -> Any:
        """PUT, conditional on metadata.resourceVersion as the API server's."""
        assert not dry_run
        meta = body["metadata"]
        key = (body["apiVersion"], body["kind"], meta.get("namespace") or "", meta["name"])
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404)
        if meta.get("resourceVersion") not in (None, current["metadata"]["resourceVersion"]):
            raise ApiError(409)
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def event(self, involved: dict[str, Any], reason: str, message: str, *, type_: str = "Normal",
              now: dt.datetime, dry_run: bool = False) -> bool:
        if not self.event_ok:
            return False
        self.events.append({"name": involved["metadata"]["name"], "reason": reason, "message": message})
        return True

    def workload_patches(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [p for p in self.patches if p[0] not in ("IdlePolicy", "ConfigMap")]


class IdleSource:
    def __init__(self) -> None:
        self.util = 0.0
        self.per_uid: dict[str, float] = {}  # pod uid -> utilization, for the pods that differ

    async def fetch(self, pods: Sequence[PodRef], now: dt.datetime) -> dict[str, Usage]:
        out = {}
        for p in pods:
            util = self.per_uid.get(p.uid, self.util)
            out[p.uid] = Usage.ok(util, util, 12, now, 60.0)
        return out

    async def close(self) -> None:
        return None


@dataclass
class SlackResult:
    ok: bool
    errors: tuple[str, ...] = ()
    channel: str | None = None
    ts: str | None = None


class FakeSlack:
    def __init__(self, configured: bool = True, ok: bool = True) -> None:
        self.configured, self.ok = configured, ok
        self.sent: list[dict[str, Any]] = []

    def mention(self, email: str | None) -> str | None:
        return None

    def send(self, message: dict[str, Any], *, owner_email: str | None = None, channel: str | None = None,
             thread: Any = None) -> Any:
        if not self.ok:
            return SlackResult(False, ("HTTP 500 from Slack",))
        self.sent.append(message)
        return SlackResult(True)


def job(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, **meta},
            "spec": {"suspend": False, "parallelism": 1}}


def statefulset(name: str, when_scaled: str = "Retain") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": 1, "persistentVolumeClaimRetentionPolicy": {"whenScaled": when_scaled,
                                                                             "whenDeleted": "Retain"}}}


def gpu_pod(owner: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    meta = owner["metadata"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name or f"{meta['name']}-0", "namespace": NS, "uid": f"pod-{meta['name']}",
                         "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                              "name": meta["name"], "uid": meta["uid"], "controller": True}]},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "m", "resources": {
                "limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running", "startTime": (T0 - dt.timedelta(hours=2)).isoformat()}}


def policy(channels: list[str] | None = None, dry_run: bool = False, name: str = "idle") -> dict[str, Any]:
    notice: dict[str, Any] = {"before": "15m", "maxSnooze": "1h"}
    if channels is not None:
        notice["channels"] = channels
    return {"apiVersion": POLICY, "kind": "IdlePolicy",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
            "spec": {"idle": {"gpuUtilPercent": 5, "for": "5m"}, "notice": notice, "dryRun": dry_run}}


class World:
    """A cluster with a policy, workloads with GPU pods, and a controller driven minute by minute."""

    def __init__(self, pol: dict[str, Any] | None, slack: Any = None, *, dry_run: bool = False,
                 settings: Settings | None = None, **overrides: Any) -> None:
        self.kube = FakeKube()
        self.registry = Registry()
        # Budgets' and leases' suspension requests the pass reads (budgets.requests.load in the operator).
        self.requests: list[Any] = []
        if pol is not None:
            self.kube.add(pol)
            self.registry.policy_event("ADDED", pol)
        self.kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, namespaced=False)
        self.kube.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}}, namespaced=False)
        self.slack, self.source = slack, IdleSource()
        self.settings = settings or Settings(metrics_port=0, dry_run=dry_run, **overrides)
        self.controller = self.restart()
        self.now = T0

    def restart(self) -> IdleController:
        self.controller = IdleController(self.kube, self.settings, self.source, self.registry,  # type: ignore[arg-type]
                                         slack=self.slack, clock=lambda: self.now,  # type: ignore[arg-type]
                                         requests=lambda: list(self.requests))
        return self.controller

    def run(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.kube.add(obj)
        pod = gpu_pod(obj)
        self.kube.add(pod)
        self.registry.pod_event("ADDED", pod)
        return obj

    def stop_pods(self, obj: dict[str, Any]) -> None:
        self.registry.pod_event("DELETED", gpu_pod(obj))

    def passes(self, minutes: int, until: Callable[[], bool] | None = None) -> None:
        import asyncio

        for _ in range(minutes):
            asyncio.run(self.controller.run_pass(self.now))
            if until is not None and until():
                return
            self.now += dt.timedelta(minutes=1)

    def state(self, obj: dict[str, Any]) -> str | None:
        meta = self.kube.obj(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])["metadata"]
        return (meta.get("annotations") or {}).get(IDLE_STATE_ANNOTATION)

    def entry(self, obj: dict[str, Any]) -> Entry | None:
        """The workload's entry as the store's ConfigMaps hold it (read from the fake API, not a cache)."""
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        key = entry_key(group, obj["kind"], obj["metadata"].get("namespace") or NS, obj["metadata"]["name"])
        for (av, kind, ns, _), cm in self.kube.objects.items():
            labels = cm["metadata"].get("labels") or {}
            if (av, kind, ns) == ("v1", "ConfigMap", self.settings.platform_namespace) \
                    and key in (cm.get("data") or {}) and labels.get(STORE_LABEL) == "idle":
                return decode_entry(cm["data"][key])[0]
        return None

    def shards(self) -> list[dict[str, Any]]:
        return [cm for (av, kind, ns, _), cm in self.kube.objects.items()
                if (av, kind, ns) == ("v1", "ConfigMap", self.settings.platform_namespace)
                and (cm["metadata"].get("labels") or {}).get(STORE_LABEL) == "idle"]

    def annotate(self, obj: dict[str, Any], **values: str | None) -> None:
        """What the workload's owner may do: set or remove annotations (``snooze_until`` -> snooze-until)."""
        ann = self.current(obj)["metadata"].setdefault("annotations", {})
        for name, value in values.items():
            full = name if "/" in name else "gpusteward.dev/" + name.replace("_", "-")
            if value is None:
                ann.pop(full, None)
            else:
                ann[full] = value

    def current(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.kube.obj(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])

    def status(self, name: str = "idle") -> dict[str, Any]:
        return self.kube.obj(POLICY, "IdlePolicy", name)["status"]

    def condition(self, ctype: str, name: str = "idle") -> dict[str, Any]:
        return next(c for c in self.status(name)["conditions"] if c["type"] == ctype)

    def suspended(self, obj: dict[str, Any]) -> bool:
        cur = self.current(obj)
        if cur["kind"] == "Job":
            return bool(cur["spec"].get("suspend"))
        return cur["spec"].get("replicas") == 0
