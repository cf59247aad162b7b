"""Sharded mode: each shard's part of every IdlePolicy status, published in its report ConfigMap, and the
one writer of each status merging them (``policy.shard_status``).

The writer of a policy's status is the shard that owns the policy's namespace. It reads the other shards'
reports from the watch of the platform namespace's ConfigMaps (no request), at its own passes and, so that a
cold start's status does not wait for the writer's next pass, every few seconds between them
(``merge_reported``: memory reads, a write only when the merged status changed). A report is written only
when its content changed, so a steady cluster costs no writes. Parts for an older generation of the policy
are not merged (they were counted under the previous spec).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import structlog

from gpu_steward.idle.status import Condition, write_status
from gpu_steward.kube import Kube
from gpu_steward.policy.shard_status import merge
from gpu_steward.settings import Settings

log = structlog.get_logger(__name__)

STORE_LABEL = "gpusteward.dev/store"
REPORT = "idle-report"
DATA_KEY = "policies"
Key = tuple[str, str]


def policy_id(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


class ShardReports:
    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube, self.shard = kube, settings.shard()
        self.namespace = settings.platform_namespace
        self.base = f"{settings.store_prefix}-report"
        self._published: str | None = None
        self._lock = threading.Lock()  # the pass and the between-passes merge write the same statuses
        # This shard's latest part of each policy, and the policy's body (its status as last written).
        self._parts: dict[Key, tuple[dict[str, Any], dict[str, Any]]] = {}

    def name(self, index: int) -> str:
        return f"{self.base}-shard-{index}"

    # ---- the parts -----------------------------------------------------------------------------
    def part(self, key: Key, body: dict[str, Any], fields: dict[str, Any], conditions: list[Condition]) -> None:
        """Record this shard's part of a policy (written by ``merge_reported`` and ``publish``)."""
        part = {"generation": body["metadata"].get("generation"), "fields": fields,
                "conditions": [list(c) for c in conditions]}
        with self._lock:
            self._parts[key] = (body, part)

    def merge_reported(self, now: dt.datetime) -> int:
        """Write the statuses this shard writes (the policies of its namespaces) where the merge of its part
        and the other shards' reports changed them; after each pass, and between passes. The reports are read
        once. Returns the writes."""
        with self._lock:
            mine = [(k, b, p) for k, (b, p) in self._parts.items() if self.shard.owns(k[0])]
        reports = self._reports() if mine else {}
        writes = 0
        for key, body, part in mine:
            try:
                writes += self._write(key, body, part, now, reports)
            except Exception as exc:  # one policy's status never stops the others'; the next round writes it
                log.warning("idle policy status not written", policy=policy_id(key), error=str(exc))
        return writes

    def _write(self, key: Key, body: dict[str, Any], part: dict[str, Any], now: dt.datetime,
               reports: dict[str, dict[str, Any]]) -> bool:
        others = [p for index in range(self.shard.count) if index != self.shard.index
                  if isinstance(p := (reports.get(self.name(index)) or {}).get(policy_id(key)), dict)
                  and p.get("generation") == part["generation"]]  # parts of the current generation only
        fields, conditions = merge(part["fields"], [tuple(c) for c in part["conditions"]], others)  # type: ignore[misc]
        reported = 1 + len(others)
        message = f"{fields.get('watched', 0)} GPU workloads watched" + (
            f" ({reported} of {self.shard.count} shards reported)" if reported < self.shard.count else "")
        with self._lock:
            return write_status(self.kube, body, fields, now, ok=True, reason="Evaluated", message=message,
                                extra=conditions)

    def _reports(self) -> dict[str, dict[str, Any]]:
        """Every shard's report by ConfigMap name."""
        out: dict[str, dict[str, Any]] = {}
        for cm in self._report_configmaps():
            try:
                parts = json.loads((cm.get("data") or {}).get(DATA_KEY) or "{}")
            except ValueError:
                continue
            if isinstance(parts, dict):
                out[cm["metadata"]["name"]] = parts
        return out

    def _report_configmaps(self) -> list[dict[str, Any]]:
        return self.kube.list("v1", "ConfigMap", self.namespace, label_selector=f"{STORE_LABEL}={REPORT}")

    # ---- this shard's report -------------------------------------------------------------------
    def publish(self, live: set[Key]) -> int:
        """Write this shard's report (its parts of the ``live`` policies) when it changed; 1 when written."""
        with self._lock:
            self._parts = {k: v for k, v in self._parts.items() if k in live}  # deleted policies go
            parts = {policy_id(k): p for k, (_, p) in self._parts.items()}
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        if text == self._published:
            return 0
        name = self.name(self.shard.index)
        try:
            current = next((cm for cm in self._report_configmaps() if cm["metadata"]["name"] == name), None)
            if current is not None and (current.get("data") or {}).get(DATA_KEY) == text:
                self._published = text
                return 0
            # Written under the global dry-run too, as policy statuses are: it is the status's content.
            if current is None and self.kube.get("v1", "ConfigMap", name, self.namespace) is None:
                self.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": name, "namespace": self.namespace,
                                               "labels": {STORE_LABEL: REPORT,
                                                          "app.kubernetes.io/managed-by": "gpu-steward"}},
                                  "data": {DATA_KEY: text}}, dry_run=False)
            else:
                self.kube.patch("v1", "ConfigMap", name, self.namespace, {"data": {DATA_KEY: text}}, dry_run=False)
        except Exception as exc:  # the writers keep this shard's previous part meanwhile; next pass again
            log.warning("shard report not written", error=f"{type(exc).__name__}: {exc}")
            return 0
        self._published = text
        return 1
