"""The one module that talks to the Kubernetes API.

Everything else builds plain dicts (desired objects, patches) and hands them here. Every mutating
call takes ``dry_run``: when it is true, nothing is sent and the call says what it would have done
(kube-janitor's rule: the flag reaches every mutating function, not just the top of the loop).

Calls are synchronous (the official client); async callers wrap them in ``asyncio.to_thread``.
"""

from __future__ import annotations

import builtins
import copy
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

log = structlog.get_logger(__name__)

JSON = dict[str, Any]


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster config when running in a pod, else the given or default kubeconfig."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.ApiClient(cfg)


@dataclass
class WriteLog:
    """Counts the writes this process sent (the steady-state benchmark's 'API writes per pass')."""

    count: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)

    def add(self, verb: str) -> None:
        self.count += 1
        self.by_verb[verb] = self.by_verb.get(verb, 0) + 1


class Kube:
    # A kind the cluster did not serve is looked up again (discovery) at most this often.
    MISSING_KIND_RECHECK_SECONDS = 15.0

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.dynamic = DynamicClient(api_client)  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api(api_client)
        self.writes = WriteLog()
        # Set while a watch of the CRDs tells when one is installed (kube_watch.CrdEvents): a kind not served is
        # then looked up again only after a CRD event, not every MISSING_KIND_RECHECK_SECONDS (each lookup of a
        # missing kind makes the dynamic client discover every group again: dozens of GETs).
        self.crds_watched = False
        # The dynamic client's discovery cache is not thread-safe, and a miss (a CRD that is not
        # installed) makes it drop the cache and discover again: a thread reading it meanwhile fails
        # (KeyError). The loops, kopf's handler threads and the Slack endpoint share this object, so
        # lookups are serialized and their results kept here (a miss for 15 s: every pass asks for
        # kinds a cluster may not serve, such as Ray or PyTorchJob).
        self._resolve_lock = threading.Lock()
        self._resolved: dict[tuple[str, str], Any] = {}
        self._missing: dict[tuple[str, str], float] = {}
        # Collections a watch keeps in memory (kube_watch, while this replica acts): (apiVersion, kind,
        # namespace or None) -> its current objects. ``list`` answers from them (equality selectors), so the
        # passes' reads of our records, budgets, leases and agent pods cost no request in a steady cluster.
        # Single reads (``get``) always go to the API: read-modify-write paths need the latest version.
        self.served_lists: dict[tuple[str, str, str | None], Callable[[], builtins.list[JSON]]] = {}

    # Labels (key, value) of objects the served lists hold without their data: a list selecting them goes
    # to the API (the cost history's store: read once at start, too big to keep twice).
    unserved_labels: frozenset[tuple[str, str]] = frozenset()

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        found = self._resolved.get(key)
        if found is not None:
            return found
        with self._resolve_lock:
            if key in self._resolved:
                return self._resolved[key]
            missed = self._missing.get(key)
            if missed is not None and (self.crds_watched
                                       or time.monotonic() - missed < self.MISSING_KIND_RECHECK_SECONDS):
                raise ResourceNotFoundError(f"No matches found for {key} (looked up recently)")
            try:
                found = self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                self._missing[key] = time.monotonic()
                raise
            self._missing.pop(key, None)
            self._resolved[key] = found
            return found

    # ---- reads -------------------------------------------------------------------------------
    def forget_missing(self) -> None:
        """A CRD was installed or changed: look every kind not served so far up again (on its next use)."""
        with self._resolve_lock:
            self._missing.clear()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        try:
            resp = self._resource(api_version, kind).get(name=name, namespace=namespace, serialize=False)
        except NotFoundError:
            return None
        return json.loads(resp.data)  # type: ignore[no-any-return]

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[JSON]:
        served = self.served_lists.get((api_version, kind, namespace))
        in_namespace = None
        if served is None and namespace is not None:  # one namespace's part of a collection served whole
            served, in_namespace = self.served_lists.get((api_version, kind, None)), namespace
        wanted = equality_selector(label_selector)
        if served is not None and wanted is not None and not self.unserved_labels & set(wanted.items()):
            return [copy.deepcopy(o) for o in served()
                    if (in_namespace is None or (o.get("metadata") or {}).get("namespace") == in_namespace)
                    and all(((o.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in wanted.items())]
        # Plain JSON, not the dynamic client's ResourceInstance tree: several times less memory and
        # time for a list of thousands of pods.
        resp = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector,
                                                     serialize=False)
        out = []
        for obj in json.loads(resp.data).get("items") or []:
            # Items of built-in lists come without apiVersion/kind; callers build refs and Events from them.
            obj.setdefault("apiVersion", api_version)
            obj.setdefault("kind", kind)
            out.append(obj)
        return out

    def get_optional(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        """Like ``get``, and None also when the cluster does not serve the kind (CRD not installed)."""
        try:
            return self.get(api_version, kind, name, namespace)
        except ResourceNotFoundError:
            return None

    def list_optional(self, api_version: str, kind: str, namespace: str | None = None,
                      label_selector: str | None = None) -> builtins.list[JSON]:
        """Like ``list``, and empty when the cluster does not serve the kind."""
        try:
            return self.list(api_version, kind, namespace, label_selector)
        except ResourceNotFoundError:
            return []

    # ---- writes ------------------------------------------------------------------------------
    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: JSON,
              *, dry_run: bool, subresource: str | None = None) -> JSON | None:
        """JSON merge patch (RFC 7396) with the smallest body that says the change; a ``None`` value
        deletes that key. A ``metadata.resourceVersion`` in the body makes it conditional (409 if stale)."""
        if dry_run:
            log.info("dry-run: would patch", kind=kind, name=name, namespace=namespace, subresource=subresource)
            return None
        res = self._resource(api_version, kind)
        if subresource == "status":
            res = res.status
        self.writes.add("patch")
        out = res.patch(body=body, name=name, namespace=namespace, content_type="application/merge-patch+json")
        return out.to_dict()  # type: ignore[no-any-return]

    def json_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                   ops: builtins.list[JSON]) -> JSON:
        """JSON patch (RFC 6902): for edits inside lists (a ``test`` op guards the index)."""
        self.writes.add("patch")
        out = self._resource(api_version, kind).patch(body=ops, name=name, namespace=namespace,
                                                      content_type="application/json-patch+json")
        return out.to_dict()  # type: ignore[no-any-return]

    def create(self, body: JSON, *, dry_run: bool) -> JSON | None:
        return self._write_whole("create", body, dry_run=dry_run)

    def replace(self, body: JSON, *, dry_run: bool) -> JSON | None:
        """PUT the whole object; its ``metadata.resourceVersion`` makes it conditional (409 if stale).
        The leader election's Lease writes use it (RBAC verb ``update``), as client-go's do."""
        return self._write_whole("replace", body, dry_run=dry_run)

    def _write_whole(self, verb: Literal["create", "replace"], body: JSON, *, dry_run: bool) -> JSON | None:
        meta = body["metadata"]
        if dry_run:
            log.info(f"dry-run: would {verb}", kind=body["kind"], name=meta.get("name"),
                     namespace=meta.get("namespace"))
            return None
        self.writes.add("create" if verb == "create" else "update")  # counted by RBAC verb
        resource = self._resource(body["apiVersion"], body["kind"])
        out = getattr(resource, verb)(body=body, namespace=meta.get("namespace"))
        return out.to_dict()  # type: ignore[no-any-return]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None, *, dry_run: bool) -> None:
        if dry_run:
            log.info("dry-run: would delete", kind=kind, name=name, namespace=namespace)
            return
        try:
            self.writes.add("delete")
            self._resource(api_version, kind).delete(name=name, namespace=namespace)
        except NotFoundError:
            pass

    def apply(self, desired: JSON, *, dry_run: bool) -> str:
        """Create if absent, patch if different, else nothing. Returns created/patched/unchanged."""
        meta = desired["metadata"]
        current = self.get(desired["apiVersion"], desired["kind"], meta["name"], meta.get("namespace"))
        if current is None:
            self.create(desired, dry_run=dry_run)
            return "created"
        patch = diff_patch(current, desired)
        if not patch:
            return "unchanged"
        self.patch(desired["apiVersion"], desired["kind"], meta["name"], meta.get("namespace"), patch,
                   dry_run=dry_run)
        return "patched"

    def event(self, involved: JSON, reason: str, message: str, *, type_: str = "Normal",
              now: dt.datetime, dry_run: bool = False) -> bool:
        """A core/v1 Event on ``involved``; True when it was recorded. Callers must never put a secret into
        ``message``. Best effort for most callers, but a notice sent as an Event counts only when this is True."""
        meta = involved["metadata"]
        ns = meta.get("namespace") or "default"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": meta["name"],
                "namespace": ns, "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": "gpu-steward"},
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        if dry_run:
            body["message"] = f"[dry-run] {body['message']}"
        try:
            self.writes.add("event")
            self._resource("v1", "Event").create(body=body, namespace=ns)
        except ApiException as exc:  # an Event is best effort: never fail an action on it
            log.warning("event not recorded", reason=reason, status=exc.status)
            return False
        return True


def equality_selector(selector: str | None) -> dict[str, str] | None:
    """``a=b,c=d`` as a dict ({} for none); None for anything else (set-based, ``!=``, existence)."""
    out: dict[str, str] = {}
    for part in (selector or "").split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or key.endswith("!") or value.startswith("=") or " " in part or not key:
            return None
        out[key] = value
    return out


def diff_patch(current: JSON, desired: JSON) -> JSON:
    """The merge patch that turns ``current`` into ``desired`` for the keys ``desired`` names.

    Only ``metadata.labels``, ``metadata.annotations`` and top-level fields other than metadata
    and status are compared, so server-set fields never cause a write.
    """
    patch: JSON = {}
    for key in ("labels", "annotations"):
        want = desired.get("metadata", {}).get(key) or {}
        have = current.get("metadata", {}).get(key) or {}
        changed = {k: v for k, v in want.items() if have.get(k) != v}
        if changed:
            patch.setdefault("metadata", {})[key] = changed
    for key, want in desired.items():
        if key in ("apiVersion", "kind", "metadata", "status"):
            continue
        sub = _merge_diff(current.get(key), want)
        if sub is not _SAME:
            patch[key] = sub
    return patch


_SAME = object()


def _merge_diff(have: Any, want: Any) -> Any:
    if isinstance(want, dict) and isinstance(have, dict):
        out = {}
        for k, v in want.items():
            sub = _merge_diff(have.get(k), v)
            if sub is not _SAME:
                out[k] = sub
        return out if out else _SAME
    return _SAME if have == want else want
