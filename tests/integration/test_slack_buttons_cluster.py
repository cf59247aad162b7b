"""Slack buttons end to end: the operator process serves the interactivity endpoint; a click Slack
signed snoozes or resumes the workload on the real apiserver, records an Event and answers the
clicker through the response_url; anything unsigned, unknown or not ours changes nothing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import yaml

from fixtures.idle_env import job
from fixtures.slack_receiver import SlackReceiver, sign_request
from gpu_steward.kube import Kube
from gpu_steward.notify.interactions import RESUME_ACTION, SNOOZE_ACTION, button_value
from gpu_steward.notify.interactions_server import PATH
from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION, RESUME_ANNOTATION, SNOOZE_ANNOTATION, WorkloadRef
from gpu_steward_testground.operator_process import OperatorProcess
from gpu_steward_testground.processes import free_port, wait_for
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
NS = "slack-buttons"
SECRET = "b6c1d0e2f3a4959687a8b9c0d1e2f3a4"  # the Slack app's signing secret, as Slack shows it


@pytest.fixture(scope="module")
def endpoint(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster.create_namespace(NS)
    port = free_port()
    log = tmp_path_factory.mktemp("slack-buttons") / "operator.log"
    op = OperatorProcess(cluster.kubeconfig, log, settings={
        "namespaces": [NS], "metrics_port": "0", "log_format": "console",
        "slack_signing_secret": SECRET, "slack_interactions_listen_addr": "127.0.0.1",
        "slack_interactions_port": str(port)}).start()
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        wait_for(lambda: _post(url, b"", {})[0] == 401 or None, timeout=60, what="the interactions endpoint")
        yield url
        assert SECRET not in op.log_text()  # the secret is never logged
        assert op.alive(), op.log_text()[-3000:]
    finally:
        op.stop()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def _click(action_id: str, value: str, response_url: str = "") -> bytes:
    payload = {"type": "block_actions", "user": {"id": "U07ADA", "username": "ada"},
               "response_url": response_url or None,
               "actions": [{"action_id": action_id, "block_id": "gpusteward", "type": "button", "value": value}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return sign_request(body, int(time.time()), secret)


def _job(kube: Kube, cluster: ControlPlane, name: str, noticed: bool) -> WorkloadRef:
    body = job(name, "no-such-node")
    if noticed:  # as the idle engine leaves it once it warned (any value: the endpoint checks presence)
        body["metadata"].setdefault("annotations", {})[IDLE_STATE_ANNOTATION] = '{"v":1,"phase":"Warned"}'
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(body))
    return WorkloadRef("batch/v1", "Job", NS, name)


def _annotations(kube: Kube, name: str) -> dict[str, str]:
    return kube.get("batch/v1", "Job", name, NS)["metadata"].get("annotations") or {}


def test_a_signed_snooze_click_snoozes_records_an_event_and_answers_in_slack(cluster: ControlPlane,
                                                                            endpoint: str) -> None:
    kube = Kube(cluster.api_client())
    ref = _job(kube, cluster, "warned", noticed=True)
    with SlackReceiver() as slack:
        body = _click(SNOOZE_ACTION, button_value(ref, timedelta(hours=2)), slack.add_response_url())
        before = datetime.now(UTC)
        status, text = _post(endpoint, body, _signed(body))
        assert status == 200, text
        until = datetime.fromisoformat(_annotations(kube, "warned")[SNOOZE_ANNOTATION].replace("Z", "+00:00"))
        assert before + timedelta(hours=2) - timedelta(seconds=5) <= until <= datetime.now(UTC) + timedelta(hours=2)
        events = wait_for(lambda: [e for e in kube.list("v1", "Event", NS)
                                   if e.get("reason") == "SnoozedFromSlack"
                                   and e["involvedObject"]["name"] == "warned"] or None, what="the Event")
        assert "ada (U07ADA)" in events[0]["message"] and SECRET not in events[0]["message"]
        reply = wait_for(lambda: [m for m in slack.messages if m.kind == "response"] or None,
                         what="the answer to the clicker")
        assert reply[0].payload["response_type"] == "ephemeral" and reply[0].payload["replace_original"] is False
        assert "Snoozed job/warned" in reply[0].payload["text"]


def test_a_resume_click_asks_for_a_resume(cluster: ControlPlane, endpoint: str) -> None:
    kube = Kube(cluster.api_client())
    ref = _job(kube, cluster, "suspended", noticed=True)
    body = _click(RESUME_ACTION, button_value(ref))
    status, text = _post(endpoint, body, _signed(body))
    assert status == 200, text
    assert _annotations(kube, "suspended")[RESUME_ANNOTATION] == "true"


def test_unsigned_unknown_or_foreign_clicks_change_nothing(cluster: ControlPlane, endpoint: str) -> None:
    kube = Kube(cluster.api_client())
    ours = _job(kube, cluster, "ours", noticed=True)
    foreign = _job(kube, cluster, "foreign", noticed=False)
    snooze = _click(SNOOZE_ACTION, button_value(ours))
    assert _post(endpoint, snooze, _signed(snooze, "guessed-secret"))[0] == 401
    assert _post(endpoint, snooze, {})[0] == 401
    stale = _signed(snooze)
    stale["X-Slack-Request-Timestamp"] = str(int(time.time()) - 600)
    assert _post(endpoint, snooze, stale)[0] == 401
    assert SNOOZE_ANNOTATION not in _annotations(kube, "ours")

    other = _click(SNOOZE_ACTION, button_value(foreign))
    status, text = _post(endpoint, other, _signed(other))
    assert status == 409 and "never noticed" in text
    assert SNOOZE_ANNOTATION not in _annotations(kube, "foreign")

    gone = _click(SNOOZE_ACTION, button_value(WorkloadRef("batch/v1", "Job", NS, "deleted-long-ago")))
    assert _post(endpoint, gone, _signed(gone))[0] == 404

    bad = _click(SNOOZE_ACTION, json.dumps({"v": 1, "apiVersion": "batch/v1", "kind": "Job", "namespace": NS}))
    status, text = _post(endpoint, bad, _signed(bad))
    assert status == 400 and text.startswith("payload.actions[0].value.name")

