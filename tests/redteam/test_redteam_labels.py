"""Label games: labels and annotations anyone with ``edit`` in a namespace can write on any workload
there, used to move what the operator does to somebody else's work: redirect the owner's notices,
take the owner's Slack buttons, opt a workload out of idle policies for good.

(Labelling pods into somebody else's lease: test_redteam_leases.py.)"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from gpu_steward.notify.interactions import Click, workload_owner_emails
from gpu_steward.policy.idle import decide
from gpu_steward.policy.idle_model import Hold, IdleRules, IdleState, WorkloadFacts
from gpu_steward.policy.selection import exempt_by_selectors
from gpu_steward.policy.usage import Usage
from gpu_steward.settings import Settings
from gpu_steward.workloads.model import WorkloadRef
from gpu_steward.workloads.resolve import owner_of

CREATED_BY = "gpusteward.dev/created-by"
ALICE, MALLORY = "alice@example.com", "mallory@example.com"


def workload(labels: dict[str, str], annotations: dict[str, str]) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "train", "namespace": "ml", "uid": "u-1", "labels": labels,
                         "annotations": annotations}}


@pytest.mark.redteam("labels")
@pytest.mark.parametrize("key", ["gpusteward.dev/owner", "owner", "gpusteward.dev/owner-email"])
def test_relabelling_the_owner_does_not_redirect_the_creators_notices(key):
    # Alice's Deployment (creator stamped by the webhook); Mallory relabels it so that the warning
    # before its suspension goes to her, and alice is never told.
    obj = workload({key: MALLORY}, {CREATED_BY: ALICE})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "train-0", "namespace": "ml",
                                                           "labels": {key: MALLORY},
                                                           "annotations": {CREATED_BY: "system:serviceaccount:x"}}}
    owner = owner_of([pod, obj], Settings(webhook_enabled=True))
    assert owner.email == ALICE
    # Without the webhooks there is no stamp to trust: the labels are all there is (docs/security.md).
    assert owner_of([pod, obj], Settings(webhook_enabled=False)).email == MALLORY


@pytest.mark.redteam("labels")
def test_relabelling_the_owner_does_not_hand_over_the_slack_buttons():
    obj = workload({"gpusteward.dev/owner": MALLORY}, {CREATED_BY: ALICE})
    click = Click(action="snooze", target=WorkloadRef("apps/v1", "Deployment", "ml", "train", "u-1"),
                  snooze=dt.timedelta(hours=1), user_id="U2", user_name="mallory", response_url=None,
                  notice_owner=MALLORY)
    assert workload_owner_emails(obj, click, MALLORY, trust_creator=True) == {ALICE}


@pytest.mark.redteam("labels")
def test_a_label_matching_an_exemption_selector_is_bounded_by_max_exemption():
    rules = IdleRules(util_threshold_percent=5, idle_for=dt.timedelta(hours=1), max_exemption=dt.timedelta(days=1),
                      dry_run=False, policy="platform/idle")
    labels = {"gpusteward.dev/tier": "prod"}  # the platform's exemption for production serving
    assert exempt_by_selectors([{"matchLabels": labels}], labels)
    facts = WorkloadFacts(gpus=1, exempt_by_selector=True, suspended=False, gpu_hour_price=Decimal(2))
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    state = IdleState()
    now = t0
    while now < t0 + dt.timedelta(days=3):  # idle (0 %) for three days, every minute
        usage = Usage.ok(0.0, 0.0, 6, now, 60.0)
        d = decide(state, usage, facts, rules, now)
        state = d.state
        now += dt.timedelta(minutes=1)
    assert d.hold is not Hold.EXEMPT_SELECTOR
    # The bound counts from the operator's first sight of the match (its store), not from the labels.
    assert state.selector_exemption is not None and state.selector_exemption.seen_at == t0
