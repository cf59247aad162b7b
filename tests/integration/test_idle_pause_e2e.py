"""The global switch on the real control plane: with actions paused at run time (a ConfigMap in the
operator's namespace) an idle Job is warned but not suspended past its stated time; unpausing, without
a restart, lets the next pass suspend it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from fixtures.idle_env import API, IdleEnv, idle_env, job, policy
from gpu_steward_testground.processes import wait_for
from gpu_steward_testground.runner import OPERATOR_NAMESPACE, ControlPlane

pytestmark = pytest.mark.cluster
NODE, NS = "pause-gpu-a", "idle-pause"
CONTROLS, RECORD = "pause-test-controls", "pause-test-blast-radius"  # this module's own, not the default names


def _controls(cluster: ControlPlane, paused: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONTROLS, "namespace": OPERATOR_NAMESPACE},
            "data": {"paused": paused, "reason": "GPU driver rollout"}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))


@pytest.fixture(scope="module")
def env(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdleEnv]:
    cluster.create_namespace(NS)
    _controls(cluster, "true")
    with idle_env(cluster, tmp_path_factory.mktemp("pause"), NODE,
                  settings={"controls_configmap": CONTROLS, "blast_record_configmap": RECORD}) as e:
        e.apply(job("paused-train", NODE), NS)
        e.apply(policy("pause"), NS)
        yield e
        print(e.operator.log_text()[-4000:])
    for name in (CONTROLS, RECORD):
        cluster.kubectl("delete", "configmap", name, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")


def _status(env: IdleEnv) -> dict[str, Any]:
    return env.get(API, "IdlePolicy", "pause", NS).get("status") or {}


def test_paused_actions_warn_but_do_not_suspend_until_unpaused_at_run_time(env: IdleEnv) -> None:
    wait_for(lambda: env.notices("paused-train", "warning"), timeout=180, what="the Slack warning")
    state = wait_for(lambda: env.state("batch/v1", "Job", "paused-train", NS).get("warnSuspendAt") and
                     env.state("batch/v1", "Job", "paused-train", NS), timeout=30, what="the stated suspension time")
    due = dt.datetime.fromisoformat(state["warnSuspendAt"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()) + 8)  # several passes past the time
    assert not env.get("batch/v1", "Job", "paused-train", NS)["spec"].get("suspend")
    status = wait_for(lambda: _status(env) if _status(env).get("deferred") else None, timeout=30,
                      what="the deferred suspension in the policy's status")
    paused = next(c for c in status["conditions"] if c["type"] == "ActionsPaused")
    assert paused["status"] == "True" and "GPU driver rollout" in paused["message"], paused
    assert "suspend" not in env.state("batch/v1", "Job", "paused-train", NS)  # no intent recorded either
    assert env.notices("paused-train", "suspended") == []

    _controls(env.cluster, "false")  # no restart: the next pass reads it
    wait_for(lambda: env.get("batch/v1", "Job", "paused-train", NS)["spec"].get("suspend") is True, timeout=60,
             what="the Job to be suspended once actions are allowed again")
    wait_for(lambda: env.notices("paused-train", "suspended"), timeout=30, what="the suspended notice")
    assert len(env.notices("paused-train", "warning")) == 1  # the warning stood; it was not repeated
    record = env.get("v1", "ConfigMap", RECORD, OPERATOR_NAMESPACE)
    assert f'"{NS}"' in record["data"]["suspensions"]  # the hourly count lives in the cluster
