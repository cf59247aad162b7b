"""Attempt: an IdlePolicy written in one namespace governs another (``spec.selector.namespaces`` or a
``namespaceSelector``), and, being "more specific", outranks the platform's policy there.

A namespaced policy governs only its own namespace (DESIGN.md invariant 9); cross-namespace selection is
honoured only for policies in the operator's own (platform) namespace."""

from __future__ import annotations

import pytest

from gpu_steward.policy.selection import PolicyCandidate, choose_policy, policy_applies
from gpu_steward.settings import Settings

PLATFORM = "gpu-steward"


def applies(selector, workload_ns, policy_ns, ns_labels=None):
    return policy_applies(selector, workload_ns, ns_labels or {}, "Job", {}, policy_namespace=policy_ns,
                          platform_namespace=PLATFORM)


@pytest.mark.redteam("scope")
def test_namespaces_list_from_another_namespace_is_ignored():
    # team-b's policy tries to govern team-a (e.g. to suspend its work, or to put it in dry-run).
    assert not applies({"namespaces": ["team-a"]}, "team-a", "team-b")
    assert not applies({"namespaces": ["team-a", "team-b"]}, "team-a", "team-b")
    # ... but still governs its own namespace when it lists it.
    assert applies({"namespaces": ["team-a", "team-b"]}, "team-b", "team-b")


@pytest.mark.redteam("scope")
def test_namespace_selector_from_another_namespace_is_ignored():
    sel = {"namespaceSelector": {"matchLabels": {"gpu": "yes"}}}
    assert not applies(sel, "team-a", "team-b", {"gpu": "yes"})
    assert not applies({"namespaceSelector": {}}, "team-a", "team-b")
    assert applies(sel, "team-b", "team-b", {"gpu": "yes"})
    # In its own namespace the selector can only narrow.
    assert not applies(sel, "team-b", "team-b", {"gpu": "no"})
    assert not applies({"namespaces": ["team-a"]}, "team-b", "team-b")


def test_platform_policies_select_across_namespaces():
    assert applies({"namespaces": ["team-a"]}, "team-a", PLATFORM)
    assert applies({"namespaceSelector": {"matchLabels": {"gpu": "yes"}}}, "team-a", PLATFORM, {"gpu": "yes"})


@pytest.mark.redteam("scope")
def test_without_a_platform_namespace_nothing_reaches_across():
    assert not policy_applies({"namespaces": ["team-a"]}, "team-a", {}, "Job", {}, policy_namespace="gpu-steward")


@pytest.mark.redteam("scope")
def test_foreign_policy_cannot_outrank_the_platform_policy():
    platform = PolicyCandidate(PLATFORM, "safety-net", {"namespaceSelector": {}}, dry_run=False)
    foreign = PolicyCandidate("team-b", "hijack", {"namespaces": ["team-a"], "kinds": ["Job"]}, dry_run=True)
    candidates = [c for c in (platform, foreign)
                  if policy_applies(c.selector, "team-a", {}, "Job", {}, policy_namespace=c.namespace,
                                    platform_namespace=PLATFORM)]
    assert choose_policy(candidates, "team-a") == platform


def test_settings_platform_namespace_defaults_to_the_operator_namespace(monkeypatch):
    assert Settings().platform_namespace == PLATFORM
    monkeypatch.setenv("GPU_STEWARD_PLATFORM_NAMESPACE", "platform")
    assert Settings().platform_namespace == "platform"


@pytest.mark.redteam("scope")
def test_a_policy_named_like_the_platforms_in_a_team_namespace_stays_there():
    # team-b names its policy like the platform's (and its namespace like a platform one) to pass for it.
    platform = PolicyCandidate(PLATFORM, "safety-net", {"namespaceSelector": {}}, dry_run=False)
    for ns in ("team-b", "gpu-steward-team", "platform"):
        impostor = PolicyCandidate(ns, "safety-net", {"namespaceSelector": {}}, dry_run=True)
        assert not policy_applies(impostor.selector, "team-a", {"kubernetes.io/metadata.name": "team-a"}, "Job", {},
                                  policy_namespace=impostor.namespace, platform_namespace=PLATFORM)
        assert choose_policy([platform], "team-a") == platform
