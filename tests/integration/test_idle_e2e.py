"""Idle policies end to end on the real control plane: agents on the fake NVML measure, the operator
(a real process) warns on Slack, suspends, survives a kill, and resumes exactly.

All scenarios start together in their own namespaces (each policy needs at least one idle minute),
then each test checks its own story.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.idle_env import (
    API,
    IdleEnv,
    idle_env,
    job,
    policy,
    statefulset,
)
from gpu_steward_testground.processes import wait_for
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
NODE, NO_AGENT_NODE = "idle-gpu-a", "idle-gpu-noagent"
NOTEBOOK_API = "kubeflow.org/v1"


@pytest.fixture(scope="module")
def env(cluster: ControlPlane, upstream_crds: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdleEnv]:
    cluster.apply_crds(upstream_crds / "kubeflow.org_notebooks.yaml")
    cluster.add_gpu_node(NO_AGENT_NODE, gpus=4)
    with idle_env(cluster, tmp_path_factory.mktemp("idle"), NODE) as e:
        _start_scenarios(e)
        yield e
        print(e.operator.log_text()[-5000:])


def _start_scenarios(e: IdleEnv) -> None:
    c = e.cluster
    for ns in ("idle-nb", "idle-job", "idle-sts", "idle-unknown", "idle-dry", "idle-snooze", "idle-exempt"):
        c.create_namespace(ns)
    # Notebooks: one idle, one busy. No notebook controller runs here, so the StatefulSet it would
    # create is created by hand, owned by the Notebook.
    for name in ("nb-idle", "nb-busy"):
        e.apply({"apiVersion": NOTEBOOK_API, "kind": "Notebook",
                 "metadata": {"name": name, "annotations": {"gpusteward.dev/owner": "lin@example.com"}},
                 "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "jupyter:1"}]}}}},
                "idle-nb")
        nb = e.get(NOTEBOOK_API, "Notebook", name, "idle-nb")
        e.apply(statefulset(name, NODE, 1, owner={"apiVersion": NOTEBOOK_API, "kind": "Notebook", "name": name,
                                                  "uid": nb["metadata"]["uid"], "controller": True}), "idle-nb")
    e.node.set_util("idle-nb", "nb-busy", 85)
    e.apply(policy("notebooks"), "idle-nb")

    e.apply(job("train", NODE), "idle-job")
    e.apply(policy("jobs"), "idle-job")

    e.apply(statefulset("serve", NODE, 3), "idle-sts")
    e.apply(policy("sts"), "idle-sts")

    e.apply(job("blind", NO_AGENT_NODE), "idle-unknown")  # no agent on that node: no data
    e.apply(policy("unknown"), "idle-unknown")

    e.apply(job("shadow", NODE), "idle-dry")
    e.apply(policy("dry", dry_run=True), "idle-dry")

    far = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    e.apply(job("snoozer", NODE, annotations={"gpusteward.dev/snooze-until": far}), "idle-snooze")
    e.apply(policy("snooze", max_snooze="30s"), "idle-snooze")

    e.apply(job("keep", NODE, labels={"gpusteward.dev/tier": "production"}), "idle-exempt")
    e.apply(policy("exempt", extra={"exemptions": {"maxExemption": "1d", "selectors": [
        {"matchLabels": {"gpusteward.dev/tier": "production"}}]}}), "idle-exempt")


def _annotations(e: IdleEnv, api: str, kind: str, name: str, ns: str) -> dict[str, str]:
    return e.get(api, kind, name, ns)["metadata"].get("annotations") or {}


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_idle_notebook_is_warned_then_suspended_once_across_an_operator_kill(env: IdleEnv) -> None:
    warning = wait_for(lambda: env.notices("nb-idle", "warning"), timeout=180, what="the Slack warning for nb-idle")
    # Kill the operator between the warning and the action (notice.before is 20s), once the warning is recorded
    # as delivered. (A kill inside the send itself may repeat the warning, which the protocol allows and counts;
    # bench/faults.py kills there.)
    wait_for(lambda: (env.state(NOTEBOOK_API, "Notebook", "nb-idle", "idle-nb").get("warn") or {}).get("done"),
             timeout=60, what="the warning to be recorded as delivered")
    env.restart_operator(pause=3)
    stopped = wait_for(lambda: _annotations(env, NOTEBOOK_API, "Notebook", "nb-idle", "idle-nb")
                       .get("kubeflow-resource-stopped"), timeout=120, what="the notebook to be stopped")
    state = env.state(NOTEBOOK_API, "Notebook", "nb-idle", "idle-nb")
    warned_at = _ts(state["warn"]["done"])
    suspended_at = _ts(state["suspend"]["done"])
    assert suspended_at - warned_at >= dt.timedelta(seconds=20), (warned_at, suspended_at)
    assert _ts(stopped) >= (warned_at + dt.timedelta(seconds=20)).replace(microsecond=0)  # RFC 3339 seconds
    wait_for(lambda: env.notices("nb-idle", "suspended"), timeout=30, what="the suspended notice")
    time.sleep(4)  # time for a duplicate to show, if the restart were to cause one
    assert [m.payload for m in env.notices("nb-idle", "warning")] == [warning[0].payload]
    assert len(env.notices("nb-idle", "suspended")) == 1


def test_busy_notebook_is_never_warned(env: IdleEnv) -> None:
    wait_for(lambda: env.state(NOTEBOOK_API, "Notebook", "nb-idle", "idle-nb").get("suspend"), timeout=180,
             what="the idle notebook's story to finish (same elapsed time for the busy one)")
    assert env.notices("nb-busy", "") == []
    assert "kubeflow-resource-stopped" not in _annotations(env, NOTEBOOK_API, "Notebook", "nb-busy", "idle-nb")
    # A busy workload is never even annotated: nothing to remember, nothing written.
    assert env.state(NOTEBOOK_API, "Notebook", "nb-busy", "idle-nb").get("phase", "Active") == "Active"


def test_suspended_notebook_resumes_by_annotation(env: IdleEnv) -> None:
    wait_for(lambda: "kubeflow-resource-stopped" in _annotations(env, NOTEBOOK_API, "Notebook", "nb-idle",
                                                                   "idle-nb"), timeout=180, what="suspension")
    env.cluster.kubectl("annotate", "notebook", "nb-idle", "-n", "idle-nb", "gpusteward.dev/resume=true")
    wait_for(lambda: "kubeflow-resource-stopped" not in _annotations(env, NOTEBOOK_API, "Notebook", "nb-idle",
                                                                       "idle-nb"), timeout=60, what="resume")
    wait_for(lambda: "gpusteward.dev/resume" not in _annotations(env, NOTEBOOK_API, "Notebook", "nb-idle", "idle-nb"),
             timeout=30, what="the resume request to be cleared")
    wait_for(lambda: env.notices("nb-idle", "resumed"), timeout=30, what="the resumed notice")


def test_job_is_suspended_through_spec_suspend_and_resumed_by_cli(env: IdleEnv) -> None:
    wait_for(lambda: env.get("batch/v1", "Job", "train", "idle-job")["spec"].get("suspend") is True, timeout=180,
             what="the Job to be suspended")
    out = subprocess.run([sys.executable, "-m", "gpu_steward.cli", "resume", "job/train", "-n", "idle-job",
                          "--kubeconfig", str(env.cluster.kubeconfig)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    wait_for(lambda: env.get("batch/v1", "Job", "train", "idle-job")["spec"].get("suspend") is False, timeout=30,
             what="the Job to run again")


def test_statefulset_scaled_to_zero_and_restored_to_its_exact_count(env: IdleEnv) -> None:
    wait_for(lambda: env.get("apps/v1", "StatefulSet", "serve", "idle-sts")["spec"]["replicas"] == 0, timeout=180,
             what="the StatefulSet to be scaled to 0")
    env.cluster.kubectl("annotate", "statefulset", "serve", "-n", "idle-sts", "gpusteward.dev/resume=true")
    wait_for(lambda: env.get("apps/v1", "StatefulSet", "serve", "idle-sts")["spec"]["replicas"] == 3, timeout=60,
             what="the StatefulSet restored to 3 replicas")


def test_missing_utilization_never_suspends(env: IdleEnv) -> None:
    wait_for(lambda: env.state("batch/v1", "Job", "train", "idle-job").get("suspend"),
             timeout=180, what="the same elapsed time as the suspended Job")
    assert not env.get("batch/v1", "Job", "blind", "idle-unknown")["spec"].get("suspend")
    assert env.state("batch/v1", "Job", "blind", "idle-unknown") == {}  # nothing to remember: never annotated
    status = env.get(API, "IdlePolicy", "unknown", "idle-unknown").get("status") or {}
    assert (status.get("watched"), status.get("unknown"), status.get("idle")) == (1, 1, 0), status
    assert env.notices("blind", "") == []


def test_dry_run_changes_nothing_and_reports_would_be_savings(env: IdleEnv) -> None:
    status = wait_for(lambda: (env.get(API, "IdlePolicy", "dry", "idle-dry").get("status") or {})
                      if (env.get(API, "IdlePolicy", "dry", "idle-dry").get("status") or {}).get("wouldSuspend")
                      else None, timeout=180, what="the dry-run policy to report a would-be suspension")
    assert status["mode"] == "DryRun" and status["wouldSuspend"] == 1
    wait_for(lambda: float((env.get(API, "IdlePolicy", "dry", "idle-dry").get("status") or {})
                           .get("wouldSaveGPUHours", "0")) > 0, timeout=60, what="would-save GPU-hours to grow")
    shadow = env.get("batch/v1", "Job", "shadow", "idle-dry")
    assert not shadow["spec"].get("suspend")
    assert env.notices("shadow", "") == []


def test_snooze_beyond_the_bound_is_cut_and_then_ends(env: IdleEnv) -> None:
    # The owner asked for 3 days; the policy allows 30s. The snooze is honoured, cut, then over.
    wait_for(lambda: env.get("batch/v1", "Job", "snoozer", "idle-snooze")["spec"].get("suspend") is True,
             timeout=240, what="the snoozed Job to be suspended after its (cut) snooze")
    state = env.state("batch/v1", "Job", "snoozer", "idle-snooze")
    seen = _ts(state["snooze"]["seen"])
    assert _ts(state["warn"]["done"]) >= seen + dt.timedelta(seconds=30)


def test_exempt_workload_is_never_touched(env: IdleEnv) -> None:
    wait_for(lambda: env.get("batch/v1", "Job", "snoozer", "idle-snooze")["spec"].get("suspend") is True,
             timeout=240, what="the longest scenario to finish")
    keep = env.get("batch/v1", "Job", "keep", "idle-exempt")
    assert not keep["spec"].get("suspend")
    assert env.notices("keep", "") == []
