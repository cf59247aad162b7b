"""Upgrading from the last release keeps its promises, from the state that release itself left.

The previous release (git commit 4bdc1a1) runs for real: its operator package is exported from
git (``git archive``) and started as a process (``python -m gpu_steward.cli run``) with that checkout
first on ``PYTHONPATH``, with its own CRDs and with kopf peering through a ClusterKopfPeering as its chart
configured it, against the local control plane, the simulated GPU node (real agent, fake NVML) and the
local Slack receiver. It warns one idle Job (``late``: 2 minutes' notice) and suspends three workloads
(``serve``, a StatefulSet at 3 replicas; ``train`` and ``button``, Jobs). Then it is stopped, as a
rollout stops it, the current CRDs are applied (docs/install.md, "Upgrading"), and this release's operator
starts on the same cluster, through its leader Lease, with the old peering objects still there:

- ``late`` is suspended no earlier than the old warning's delivery + notice.before (nor before the time
  the old warning stated), and is not warned again;
- ``serve`` is resumed by ``gpusteward.dev/resume=true`` (to its recorded 3 replicas), ``train`` by the CLI
  (``gpu-steward resume``); the old release's Resume button for ``button`` is refused (it carries no
  UID, expiry or seal), and ``button`` resumes by the CLI;
  each gets exactly one resumed notice and no repeated warning or suspended notice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from fixtures.idle_env import REPO, IdleEnv, job, policy, statefulset
from fixtures.slack_receiver import SlackReceiver, sign_request
from gpu_steward.kube import Kube
from gpu_steward.notify.interactions import RESUME_ACTION
from gpu_steward.notify.interactions_server import PATH
from gpu_steward_testground.deviceplugin import DevicePluginLoop
from gpu_steward_testground.gpunode import SimulatedGpuNode
from gpu_steward_testground.operator_process import OperatorProcess
from gpu_steward_testground.processes import free_port, wait_for
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
PREVIOUS = "4bdc1a1"  # the last release
NODE = "upgrade-gpu-a"
WARN_NS, SUSP_NS, SYSTEM_NS = "upg-warn", "upg-susp", "upg-system"
LATE_NOTICE = dt.timedelta(seconds=120)  # notice.before of the policy over `late`
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # the Slack app's signing secret
PEERING = "gpu-steward"  # the ClusterKopfPeering the old chart created (its peeringName)


@dataclass
class PreviousOperator(OperatorProcess):
    """The previous release's operator: its own package first on the import path."""

    checkout: Path | None = None

    def env(self) -> dict[str, str]:
        assert self.checkout is not None
        env = super().env()
        env["PYTHONPATH"] = os.pathsep.join([str(self.checkout / "operator"), str(self.checkout / "agent")])
        return env


def _export_previous(dest: Path) -> Path:
    """The previous release's files (operator, agent, CRDs, chart CRDs), as committed."""
    archive = dest / "previous.tar"
    out = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), PREVIOUS,
                          "operator", "agent", "crds", "charts/gpu-steward/crds"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"the previous release {PREVIOUS} is not in this clone: {out.stderr.strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "previous", filter="data")
    return dest / "previous"


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


@dataclass
class Upgrade:
    env: IdleEnv
    old: PreviousOperator
    new_endpoint: str
    late_warned: dt.datetime  # the old warning's delivery, as the old release recorded it
    late_stated: dt.datetime  # the suspension time the old warning stated
    resume_button: str  # the Resume button's value in the old release's suspended notice for `button`
    notices_at_upgrade: dict[tuple[str, str], int]


def _count(e: IdleEnv) -> dict[tuple[str, str], int]:
    return {(n, s): len(e.notices(n, s)) for n in ("late", "serve", "train", "button")
            for s in ("warning", "suspended", "resumed")}


@pytest.fixture(scope="module")
def upgrade(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgrade]:
    tmp = tmp_path_factory.mktemp("upgrade")
    previous = _export_previous(tmp)
    # The previous release's CRDs, as its chart installed them (kopf's peering CRD among them).
    cluster.apply_crds(*sorted((previous / "charts/gpu-steward/crds").glob("*.yaml")))
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}))
    for ns in (WARN_NS, SUSP_NS, SYSTEM_NS):
        cluster.create_namespace(ns)
    cluster.add_gpu_node(NODE, gpus=8)
    node = SimulatedGpuNode(NODE, gpus=8, window_seconds=6, interval_seconds=1).start()
    plugin = DevicePluginLoop(cluster.api_client(), [node]).start()
    slack = SlackReceiver().__enter__()
    webhook = slack.add_webhook()
    common = {"evaluation_interval_seconds": "2", "sample_max_age_seconds": "20",
              "agent_endpoints": {NODE: node.url}, "slack_webhook_url": webhook, "slack_signing_secret": SECRET,
              "slack_interactions_listen_addr": "127.0.0.1", "log_format": "console", "metrics_port": "0"}
    old = PreviousOperator(cluster.kubeconfig, tmp / "previous-operator.log", settings={
        **common, "slack_interactions_port": str(free_port()), "peering_name": PEERING}, checkout=previous)
    new_port = free_port()
    # This release serves buttons only with a bot token too (users.info tells who clicked).
    new = OperatorProcess(cluster.kubeconfig, tmp / "operator.log", settings={
        **common, "slack_interactions_port": str(new_port), "slack_bot_token": slack.add_token(),
        "slack_api_url": slack.api_url,
        "leader_election_lease_name": "gpu-steward-leader", "leader_election_namespace": SYSTEM_NS,
        # Its own namespace, as a release's: its state store is created by this upgrade (docs/store.md), not
        # by an operator of an earlier test in this session sharing the default namespace.
        "platform_namespace": SYSTEM_NS})
    e = IdleEnv(cluster, Kube(cluster.api_client()), node, slack, new, webhook)
    try:
        e.apply(policy("idle", before=f"{int(LATE_NOTICE.total_seconds())}s"), WARN_NS)
        e.apply(job("late", NODE), WARN_NS)
        e.apply(policy("idle", before="10s"), SUSP_NS)
        e.apply(statefulset("serve", NODE, 3), SUSP_NS)
        e.apply(job("train", NODE), SUSP_NS)
        e.apply(job("button", NODE), SUSP_NS)
        old.start()

        # --- the previous release warns `late` and suspends the other three ------------------------
        def suspended(kind: str, name: str) -> bool:
            labels = e.get("apps/v1" if kind == "StatefulSet" else "batch/v1", kind, name, SUSP_NS)["metadata"] \
                .get("labels") or {}
            return labels.get("gpusteward.dev/suspended") == "true"

        try:
            wait_for(lambda: all(suspended(k, n) for k, n in
                                 (("StatefulSet", "serve"), ("Job", "train"), ("Job", "button"))),
                     timeout=240, what="the previous release to suspend serve, train and button")
            wait_for(lambda: all(e.notices(n, "suspended") for n in ("serve", "train", "button")),
                     timeout=30, what="the previous release's suspended notices")
            late = wait_for(lambda: e.state("batch/v1", "Job", "late", WARN_NS).get("warn", {}).get("done"),
                            timeout=60, what="the previous release's confirmed warning of late")
        finally:
            print(old.log_text()[-3000:])
        assert e.get("batch/v1", "Job", "late", WARN_NS)["spec"].get("suspend") is not True
        assert "warnSuspendAt" not in e.state("batch/v1", "Job", "late", WARN_NS)  # the old record: no stated time
        old.stop()  # SIGTERM, as a rollout (or the scale-to-0 before it) stops it
        assert not old.alive()
        notices = _count(e)
        [warning] = e.notices("late", "warning")
        stated = re.search(r"will be suspended at (\S+)", str(warning.payload.get("text")))
        assert stated, warning.payload
        [button_notice] = e.notices("button", "suspended")
        values = [el["value"] for b in button_notice.payload.get("blocks", []) if b.get("type") == "actions"
                  for el in b["elements"] if el.get("action_id") == RESUME_ACTION]
        assert len(values) == 1, button_notice.payload

        # --- the upgrade: CRDs first, then this release ---------------------------------------------
        cluster.apply_crds(*sorted((REPO / "crds").glob("*.yaml")))
        new.start()
        url = f"http://127.0.0.1:{new_port}{PATH}"
        wait_for(lambda: _post(url, b"", {}) == 401 or None, timeout=90, what="this release's Slack endpoint")
        yield Upgrade(e, old, url, _ts(late), _ts(stated.group(1).rstrip(".")), values[0], notices)
        assert new.alive(), new.log_text()[-3000:]
    finally:
        print(new.log_text()[-5000:])
        old.stop()
        new.stop()
        plugin.stop()
        node.stop()
        slack.close()


def test_an_old_warning_keeps_its_time_and_is_not_given_again(upgrade: Upgrade) -> None:
    e = upgrade.env
    assert upgrade.notices_at_upgrade[("late", "warning")] == 1
    wait_for(lambda: e.get("batch/v1", "Job", "late", WARN_NS)["spec"].get("suspend") is True,
             timeout=LATE_NOTICE.total_seconds() + 120, what="late to be suspended by this release")
    state = e.state("batch/v1", "Job", "late", WARN_NS)
    suspended_at = _ts(state["suspend"]["done"])
    assert suspended_at >= upgrade.late_warned + LATE_NOTICE, (upgrade.late_warned, suspended_at)
    assert suspended_at >= upgrade.late_stated, (upgrade.late_stated, suspended_at)
    assert _ts(state["warn"]["done"]) == upgrade.late_warned  # the old warning is the one that counts
    assert _ts(state["warnSuspendAt"]) == upgrade.late_warned + LATE_NOTICE
    wait_for(lambda: e.notices("late", "suspended"), timeout=30, what="the suspended notice of late")
    time.sleep(4)  # time for a duplicate to show
    assert len(e.notices("late", "warning")) == 1
    assert len(e.notices("late", "suspended")) == 1


def _resumed_once(e: IdleEnv, name: str, running: Any, notices_at_upgrade: dict[tuple[str, str], int]) -> None:
    wait_for(running, timeout=60, what=f"{name} to run again")
    wait_for(lambda: e.notices(name, "resumed"), timeout=30, what=f"the resumed notice of {name}")
    time.sleep(4)  # time for a duplicate to show (a new idle warning needs a whole idle minute first)
    assert len(e.notices(name, "resumed")) == 1
    for stage in ("warning", "suspended"):  # nothing the previous release sent is sent again
        assert len(e.notices(name, stage)) == notices_at_upgrade[(name, stage)] == 1, stage
    meta = e.get("apps/v1" if name == "serve" else "batch/v1", "StatefulSet" if name == "serve" else "Job",
                 name, SUSP_NS)["metadata"]
    assert "gpusteward.dev/resume" not in (meta.get("annotations") or {})
    assert "gpusteward.dev/suspended" not in (meta.get("labels") or {})


def test_an_old_suspension_resumes_by_annotation_to_its_recorded_replicas(upgrade: Upgrade) -> None:
    e = upgrade.env
    assert e.get("apps/v1", "StatefulSet", "serve", SUSP_NS)["spec"]["replicas"] == 0
    e.cluster.kubectl("annotate", "statefulset", "serve", "-n", SUSP_NS, "gpusteward.dev/resume=true")
    _resumed_once(e, "serve", lambda: e.get("apps/v1", "StatefulSet", "serve", SUSP_NS)["spec"]["replicas"] == 3,
                  upgrade.notices_at_upgrade)


def test_an_old_suspension_resumes_by_the_cli(upgrade: Upgrade) -> None:
    e = upgrade.env
    assert e.get("batch/v1", "Job", "train", SUSP_NS)["spec"].get("suspend") is True
    out = subprocess.run([sys.executable, "-m", "gpu_steward.cli", "resume", "job/train", "-n", SUSP_NS,
                          "--kubeconfig", str(e.cluster.kubeconfig)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    _resumed_once(e, "train", lambda: e.get("batch/v1", "Job", "train", SUSP_NS)["spec"].get("suspend") is False,
                  upgrade.notices_at_upgrade)


def test_the_old_messages_button_is_refused_and_the_cli_resumes(upgrade: Upgrade) -> None:
    """An old release's button names no UID, no expiry and no owner and is not sealed: this release
    refuses it (a clear 400), changes nothing, and the notice's command still works."""
    e = upgrade.env
    assert e.get("batch/v1", "Job", "button", SUSP_NS)["spec"].get("suspend") is True
    payload = {"type": "block_actions", "user": {"id": "U07ADA", "username": "ada"}, "trigger_id": "1.2.old",
               "actions": [{"action_id": RESUME_ACTION, "block_id": "gpusteward", "type": "button",
                            "action_ts": "1767225600.000001", "value": upgrade.resume_button}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    assert _post(upgrade.new_endpoint, body, sign_request(body, int(time.time()), SECRET)) == 400
    assert e.get("batch/v1", "Job", "button", SUSP_NS)["spec"].get("suspend") is True
    out = subprocess.run([sys.executable, "-m", "gpu_steward.cli", "resume", "job/button", "-n", SUSP_NS,
                          "--kubeconfig", str(e.cluster.kubeconfig)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    _resumed_once(e, "button", lambda: e.get("batch/v1", "Job", "button", SUSP_NS)["spec"].get("suspend") is False,
                  upgrade.notices_at_upgrade)


def test_the_old_peering_objects_do_not_disturb_this_release(upgrade: Upgrade) -> None:
    e = upgrade.env
    peering = e.cluster.kubectl("get", "clusterkopfpeering", PEERING, "-o", "json")
    assert json.loads(peering.stdout)["metadata"]["name"] == PEERING  # still there, left alone
    log = e.operator.log_text()
    assert "leading: this replica acts" in log
    assert "Traceback" not in log and "peering" not in log.lower(), log[-3000:]
