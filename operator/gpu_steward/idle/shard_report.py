"""Sharded mode: each shard's part of every IdlePolicy status, published in its report ConfigMap.

The writer of a policy's status (the shard owning the policy's namespace, ``policy.shard_status``) reads the
other shards' reports from the watch of the platform namespace's ConfigMaps: no request per pass. A report is
written only when its content changed, so a steady cluster costs no writes. Parts for an older generation of
the policy are not merged (they were counted under the previous spec).
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from gpu_steward.kube import Kube
from gpu_steward.settings import Settings

log = structlog.get_logger(__name__)

STORE_LABEL = "gpusteward.dev/store"
REPORT = "idle-report"
DATA_KEY = "policies"


def policy_id(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


class ShardReports:
    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube, self.shard = kube, settings.shard()
        self.namespace = settings.platform_namespace
        self.base = f"{settings.store_prefix}-report"
        self._published: str | None = None

    def name(self, index: int) -> str:
        return f"{self.base}-shard-{index}"

    def _reports(self) -> dict[str, dict[str, Any]]:
        """Every shard's report by ConfigMap name (the watch's copy in the operator)."""
        out: dict[str, dict[str, Any]] = {}
        for cm in self.kube.list("v1", "ConfigMap", self.namespace, label_selector=f"{STORE_LABEL}={REPORT}"):
            try:
                parts = json.loads((cm.get("data") or {}).get(DATA_KEY) or "{}")
            except ValueError:
                continue
            if isinstance(parts, dict):
                out[cm["metadata"]["name"]] = parts
        return out

    def others(self, keys: list[tuple[str, str]], generations: dict[tuple[str, str], Any]
               ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The other shards' parts of each policy in ``keys`` at its current generation."""
        reports = self._reports() if keys else {}
        out: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in keys}
        for index in range(self.shard.count):
            if index == self.shard.index:
                continue
            parts = reports.get(self.name(index)) or {}
            for key in keys:
                part = parts.get(policy_id(key))
                if isinstance(part, dict) and part.get("generation") == generations.get(key):
                    out[key].append(part)
        return out

    def publish(self, parts: dict[str, dict[str, Any]], *, dry_run: bool) -> bool:
        """Write this shard's report when it changed; True when written."""
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        if text == self._published:
            return False
        name = self.name(self.shard.index)
        current = next((cm for cm in self.kube.list("v1", "ConfigMap", self.namespace,
                                                     label_selector=f"{STORE_LABEL}={REPORT}")
                        if cm["metadata"]["name"] == name), None)
        if current is not None and (current.get("data") or {}).get(DATA_KEY) == text:
            self._published = text
            return False
        if current is None and self.kube.get("v1", "ConfigMap", name, self.namespace) is None:
            self.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": name, "namespace": self.namespace,
                                           "labels": {STORE_LABEL: REPORT,
                                                      "app.kubernetes.io/managed-by": "gpu-steward"}},
                              "data": {DATA_KEY: text}}, dry_run=dry_run)
        else:
            self.kube.patch("v1", "ConfigMap", name, self.namespace, {"data": {DATA_KEY: text}}, dry_run=dry_run)
        self._published = text
        return True
