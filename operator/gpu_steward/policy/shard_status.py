"""One IdlePolicy status from every shard's part of it (sharded mode, ``policy.shards``).

A policy that selects namespaces of several shards is evaluated by each of them on its own workloads, but its
status has one writer: the shard that owns the policy's namespace. Every shard publishes its part (the counts
and conditions its pass would have written) in its report ConfigMap, and the writer merges the parts it can
read with its own. Counts add up, money and GPU-hours add up as decimals, and a condition that is True in any
shard is True in the merged status with every shard's message joined, since a breaker open in one shard
holds back that shard's suspensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

Condition = tuple[str, str, str, str]  # type, status, reason, message

# The status fields that are the same in every shard's part (not summed).
SAME = frozenset({"mode", "currency"})
MESSAGE_LIMIT = 1024


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, bool) or isinstance(b, bool):
        return a
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(a, str) and isinstance(b, str):
        try:
            return str(Decimal(a) + Decimal(b))
        except InvalidOperation:
            return a
    return a


def merge(own_fields: Mapping[str, Any], own_conditions: Iterable[Condition],
          others: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], list[Condition]]:
    """The writer's status: its own part merged with the ``others`` (each ``{"fields": …, "conditions": […]}``
    as published). A field only another shard has is taken as it is."""
    fields = dict(own_fields)
    by_type: dict[str, list[Condition]] = {}
    for cond in own_conditions:
        by_type.setdefault(cond[0], []).append(tuple(cond))  # type: ignore[arg-type]
    for part in others:
        for key, value in (part.get("fields") or {}).items():
            if key in SAME:
                continue
            fields[key] = _add(fields[key], value) if key in fields else value
        for cond in part.get("conditions") or []:
            if isinstance(cond, list | tuple) and len(cond) == 4:
                by_type.setdefault(str(cond[0]), []).append(tuple(str(x) for x in cond))  # type: ignore[arg-type]
    conditions: list[Condition] = []
    for ctype, conds in by_type.items():
        true = [c for c in conds if c[1] == "True"]
        if not true:
            conditions.append(conds[0])
            continue
        messages = list(dict.fromkeys(c[3] for c in true))  # the same message once (a shared cause)
        conditions.append((ctype, "True", true[0][2], "; ".join(messages)[:MESSAGE_LIMIT]))
    return fields, conditions
