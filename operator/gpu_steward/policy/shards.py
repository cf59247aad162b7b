"""Sharded mode (docs/scale.md, "When one replica is not enough"): which namespaces a shard owns, and how the
names and cluster-wide limits of one operator become one shard's.

A namespace belongs to exactly one of ``count`` shards, by a stable hash of its name, so every shard decides
alone and the same way, without talking to the others. Each shard is its own operator Deployment with its
own leader Lease, and acts only on GPU pods, workloads, GPUBudgets and ExperimentLeases of the namespaces it
owns. What one operator keeps under a fixed name (its Lease, the idle store's ConfigMaps, the blast-radius
record, the cost history) gets a per-shard suffix, so no two leaders ever write the same object. The limits
that are cluster-wide (suspensions per hour and per pass, cost-annotation writes per second) are split so the
shards' sum never exceeds the configured figure.

Changing ``count`` moves namespaces between shards: the new owner starts from the shared facts (the
workloads' annotations, the budgets' records, every shard's cost history) and from an empty idle store, so a
workload part-way to a suspension starts its idle clock again; nothing is suspended early and no spend is lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in [0, count): index {self.index}, count {self.count}")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, namespace: str | None) -> bool:
        """Whether this shard acts in ``namespace`` (every namespace when not sharded)."""
        return self.count == 1 or shard_of(namespace or "", self.count) == self.index

    def name(self, base: str) -> str:
        """The per-shard name of an object one operator keeps under ``base`` (``base`` itself unsharded)."""
        return base if self.count == 1 else f"{base}-shard-{self.index}"

    def share(self, cap: int) -> int:
        """This shard's part of a cluster-wide count limit: the parts add up to ``cap`` exactly (the first
        ``cap % count`` shards get one more), so together the shards never exceed it."""
        return cap // self.count + (1 if self.index < cap % self.count else 0)

    def share_rate(self, rate: float) -> float:
        """This shard's part of a cluster-wide rate (writes per second)."""
        return rate / self.count

    def label(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(namespace: str, count: int) -> int:
    """The shard that owns ``namespace`` among ``count``: the same answer in every process and release."""
    digest = hashlib.sha256(namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count
