"""Which workloads a policy applies to, and which ONE policy wins when several do (pure).

Label selectors follow Kubernetes ``metav1.LabelSelector``: ``matchLabels`` and ``matchExpressions``
(``In``, ``NotIn``, ``Exists``, ``DoesNotExist``), all requirements ANDed; an empty selector ``{}``
matches everything; ``NotIn`` also matches when the key is absent (as in Kubernetes).
A selector that is malformed matches nothing (``validate_selector`` says why, naming the field) —
for a policy that means "applies to nothing", for an exemption "exempts nothing": never a surprise action.

IdlePolicy ``spec.selector`` = ``{namespaces, namespaceSelector, workloadSelector, kinds}``:
every part that is present must match. With neither ``namespaces`` nor ``namespaceSelector`` the
policy covers its own namespace only (pass ``policy_namespace``); without ``policy_namespace`` it
covers all namespaces.

Scope (DESIGN.md invariant 9, "a namespaced policy governs only its namespace"): only a policy in the
platform namespace (the operator's own, ``platform_namespace``) may reach other namespaces through
``namespaces`` / ``namespaceSelector``. A policy anywhere else governs its own namespace and nothing
more; there those fields can only narrow (own namespace not listed, or its labels not matching: the
policy applies to nothing). Without a ``platform_namespace`` no policy reaches across namespaces.

Choosing one policy (``choose_policy``): the most specific wins, then the strictest, then the name:
1. namespace: listed in ``namespaces`` or the policy's own namespace (2) > ``namespaceSelector`` (1) > any (0);
2. more workload-selector requirements (labels + expressions);
3. ``kinds`` restricted beats any kind;
4. enforcing beats dry-run, then the shorter ``idle_for`` (the stricter policy);
5. ``namespace/name`` ascending — so the choice is deterministic on every replica and every pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_selector(selector: Any, field: str) -> list[str]:
    """Problems with a LabelSelector dict, each naming the field; empty when valid (None is valid)."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [f"{field}: must be an object"]
    errors: list[str] = []
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        errors.append(f"{field}.matchLabels: must map strings to strings")
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        return [*errors, f"{field}.matchExpressions: must be a list"]
    for i, expr in enumerate(exprs):
        where = f"{field}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            errors.append(f"{where}: must be an object")
            continue
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if not isinstance(key, str) or not key:
            errors.append(f"{where}.key: required")
        if op not in _OPERATORS:
            errors.append(f"{where}.operator: {op!r} is not one of {', '.join(_OPERATORS)}")
        elif op in ("In", "NotIn") and (not isinstance(values, list) or not values):
            errors.append(f"{where}.values: {op} needs at least one value")
        elif op in ("Exists", "DoesNotExist") and values:
            errors.append(f"{where}.values: must be empty for {op}")
    return errors


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Kubernetes LabelSelector semantics. None or {} matches everything; a malformed selector nothing."""
    if selector is None:
        return True
    if validate_selector(selector, "selector"):
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _requirements(selector: Mapping[str, Any] | None) -> int:
    if not selector:
        return 0
    return len(selector.get("matchLabels") or {}) + len(selector.get("matchExpressions") or [])


def policy_applies(
    policy_selector: Mapping[str, Any] | None,
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    workload_kind: str,
    workload_labels: Mapping[str, str] | None,
    policy_namespace: str | None = None,
    platform_namespace: str | None = None,
) -> bool:
    """Whether an IdlePolicy ``spec.selector`` covers this workload (see the module doc for defaults
    and for the scope of a policy outside ``platform_namespace``)."""
    sel = policy_selector or {}
    if policy_namespace is not None and policy_namespace != platform_namespace and namespace != policy_namespace:
        return False  # a namespaced policy governs only its own namespace
    namespaces = sel.get("namespaces")
    ns_selector = sel.get("namespaceSelector")
    if namespaces:
        if namespace not in namespaces:
            return False
    elif ns_selector is None and policy_namespace is not None and namespace != policy_namespace:
        return False
    if ns_selector is not None and not selector_matches(ns_selector, namespace_labels):
        return False
    kinds = sel.get("kinds")
    if kinds and workload_kind not in kinds:
        return False
    return selector_matches(sel.get("workloadSelector"), workload_labels)


def exempt_by_selectors(selectors: Sequence[Mapping[str, Any]] | None, workload_labels: Mapping[str, str]) -> bool:
    """``spec.exemptions.selectors``: any matching selector exempts. An empty selector {} is ignored here:
    exempting everything by accident would silently switch the policy off."""
    return any(s and selector_matches(s, workload_labels) for s in selectors or [])


@dataclass(frozen=True)
class PolicyCandidate:
    """A policy that applies to the workload, with what the choice needs."""

    namespace: str
    name: str
    selector: Mapping[str, Any] | None
    dry_run: bool = True
    idle_for: timedelta | None = None


def specificity(candidate: PolicyCandidate, workload_namespace: str) -> tuple[int, int, int]:
    sel = candidate.selector or {}
    if workload_namespace in (sel.get("namespaces") or []) or (
        not sel.get("namespaces") and sel.get("namespaceSelector") is None and candidate.namespace == workload_namespace
    ):
        ns = 2
    elif sel.get("namespaceSelector") is not None:
        ns = 1
    else:
        ns = 0
    return ns, _requirements(sel.get("workloadSelector")), 1 if sel.get("kinds") else 0


def choose_policy(candidates: Sequence[PolicyCandidate], workload_namespace: str) -> PolicyCandidate | None:
    """The one policy that governs the workload (deterministic), or None when there is none."""

    def key(c: PolicyCandidate) -> tuple[Any, ...]:
        ns, reqs, kinds = specificity(c, workload_namespace)
        idle_for = c.idle_for.total_seconds() if c.idle_for is not None else float("inf")
        return (-ns, -reqs, -kinds, c.dry_run, idle_for, c.namespace, c.name)

    return min(candidates, key=key) if candidates else None
