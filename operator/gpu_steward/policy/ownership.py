"""Ownership admission for GPU pods: which required labels a pod lacks, and what to tell its author. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from gpu_steward.policy.cost import pod_gpus

Mode = Literal["off", "warn", "enforce"]


def missing_labels(pod: Mapping[str, Any], required: Sequence[str]) -> list[str]:
    """Required labels a GPU pod lacks (empty or absent both count as missing); [] for non-GPU pods."""
    if pod_gpus(pod) <= 0:
        return []
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return [key for key in required if not str(labels.get(key) or "").strip()]


def ownership_message(missing: Sequence[str]) -> str:
    example = " ".join(f"{key}=<value>" for key in missing)
    return (
        f"GPU pods must say who owns them: add the label(s) {', '.join(missing)} to the pod (or its "
        f"workload's pod template), e.g. metadata.labels: {example}"
    )


def admission_verdict(pod: Mapping[str, Any], required: Sequence[str], mode: Mode) -> tuple[str, str | None]:
    """("allow"|"warn"|"reject", message)."""
    if mode == "off":
        return ("allow", None)
    missing = missing_labels(pod, required)
    if not missing:
        return ("allow", None)
    return ("reject" if mode == "enforce" else "warn", ownership_message(missing))
