from __future__ import annotations

from datetime import timedelta

from gpu_steward.policy.selection import (
    PolicyCandidate,
    choose_policy,
    exempt_by_selectors,
    policy_applies,
    selector_matches,
    validate_selector,
)

LABELS = {"team": "vision", "tier": "dev", "app": "nb"}


def test_match_labels_and_expressions():
    assert selector_matches({}, LABELS)
    assert selector_matches({"matchLabels": {"team": "vision"}}, LABELS)
    assert not selector_matches({"matchLabels": {"team": "nlp"}}, LABELS)
    assert selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["dev", "test"]}]}, LABELS
    )
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["dev"]}]}, LABELS)
    assert selector_matches({"matchExpressions": [{"key": "gone", "operator": "NotIn", "values": ["x"]}]}, LABELS)
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, LABELS)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, LABELS)
    both = {"matchLabels": {"team": "vision"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}
    assert not selector_matches(both, LABELS)


def test_malformed_selector_matches_nothing_and_says_where():
    bad = {
        "matchExpressions": [{"key": "tier", "operator": "Within", "values": ["dev"]}, {"key": "a", "operator": "In"}]
    }
    assert not selector_matches(bad, LABELS)
    errors = validate_selector(bad, "spec.selector.workloadSelector")
    assert errors[0].startswith("spec.selector.workloadSelector.matchExpressions[0].operator:")
    assert errors[1].startswith("spec.selector.workloadSelector.matchExpressions[1].values:")


def test_policy_applies_by_namespace_kind_and_labels():
    sel = {"namespaces": ["ml"], "kinds": ["Notebook", "Job"], "workloadSelector": {"matchLabels": {"team": "vision"}}}
    assert policy_applies(sel, "ml", {}, "Notebook", LABELS)
    assert not policy_applies(sel, "other", {}, "Notebook", LABELS)
    assert not policy_applies(sel, "ml", {}, "Deployment", LABELS)
    assert not policy_applies(sel, "ml", {}, "Job", {"team": "nlp"})
    by_ns_label = {"namespaceSelector": {"matchLabels": {"gpu": "yes"}}}
    assert policy_applies(by_ns_label, "a", {"gpu": "yes"}, "Pod", {}, policy_namespace="platform",
                          platform_namespace="platform")
    assert not policy_applies(by_ns_label, "a", {"gpu": "no"}, "Pod", {}, policy_namespace="platform",
                              platform_namespace="platform")
    # No namespace selection: the policy's own namespace only.
    assert policy_applies({}, "ml", {}, "Job", {}, policy_namespace="ml")
    assert not policy_applies({}, "other", {}, "Job", {}, policy_namespace="ml")


def test_exemption_selectors_ignore_an_empty_selector():
    assert exempt_by_selectors([{"matchLabels": {"tier": "dev"}}], LABELS)
    assert not exempt_by_selectors([{}], LABELS)
    assert not exempt_by_selectors(None, LABELS)


def test_choose_policy_most_specific_then_strictest_deterministic():
    cluster = PolicyCandidate("platform", "all", {"namespaceSelector": {}}, dry_run=False)
    team = PolicyCandidate("ml", "team", {}, dry_run=True)
    team_nb = PolicyCandidate("ml", "nb", {"kinds": ["Notebook"]}, dry_run=True)
    assert choose_policy([cluster, team], "ml") == team
    assert choose_policy([cluster, team, team_nb], "ml") == team_nb
    fast = PolicyCandidate("ml", "z-fast", {}, dry_run=True, idle_for=timedelta(minutes=10))
    slow = PolicyCandidate("ml", "a-slow", {}, dry_run=True, idle_for=timedelta(hours=1))
    assert choose_policy([slow, fast], "ml") == fast
    enforcing = PolicyCandidate("ml", "zz", {}, dry_run=False, idle_for=timedelta(hours=2))
    assert choose_policy([slow, fast, enforcing], "ml") == enforcing
    a, b = PolicyCandidate("ml", "a", {}), PolicyCandidate("ml", "b", {})
    assert choose_policy([b, a], "ml") == choose_policy([a, b], "ml") == a
    assert choose_policy([], "ml") is None
