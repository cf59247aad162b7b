"""Issue 17 acceptance: the kubectl plugin driven as a user drives it, through the real kubectl.

``kubectl gpu-steward ...`` finds ``kubectl-gpu_steward`` on the PATH (a launcher for this checkout's
``gpu_steward.cli:kubectl_main``, the console script's target), with a kubeconfig whose context names
a non-default namespace. The operator runs as a real process with real agents on the fake NVML: a
Notebook and a Job are warned (long notice), another Job is suspended; ``explain`` must agree with the
operator's records and Events, ``top`` must list them money-on-fire first, and every user-caused error
must be one useful line with the right exit code and no traceback.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.idle_env import IdleEnv, idle_env, job, policy, statefulset
from gpu_steward_testground.processes import wait_for
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]
NODE = "cli-gpu-a"
TEAM, SUSP = "cli-team", "cli-susp"
NB_API = "kubeflow.org/v1"
MARK = {"gpusteward.dev/cli-test": "yes"}


@pytest.fixture(scope="module")
def env(cluster: ControlPlane, upstream_crds: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdleEnv]:
    cluster.apply_crds(upstream_crds / "kubeflow.org_notebooks.yaml")
    with idle_env(cluster, tmp_path_factory.mktemp("cli"), NODE) as e:
        for ns in (TEAM, SUSP, "gpu-steward"):
            cluster.create_namespace(ns, labels=MARK if ns != "gpu-steward" else None)
        # A platform-wide policy (dry-run) that covers both namespaces by label and loses to the team's own.
        e.apply(policy("platform-wide", dry_run=True, idle_for="2h",
                       extra={"selector": {"namespaceSelector": {"matchLabels": MARK}}}), "gpu-steward")
        e.apply(policy("team", before="30m"), TEAM)  # warned, and stays warned for the test
        e.apply({"apiVersion": NB_API, "kind": "Notebook",
                 "metadata": {"name": "nb-warned", "annotations": {"gpusteward.dev/owner": "lin@example.com"}},
                 "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "jupyter:1"}]}}}}, TEAM)
        nb = e.get(NB_API, "Notebook", "nb-warned", TEAM)
        e.apply(statefulset("nb-warned", NODE, 1, owner={"apiVersion": NB_API, "kind": "Notebook",
                                                         "name": "nb-warned", "uid": nb["metadata"]["uid"],
                                                         "controller": True}), TEAM)
        e.apply(job("job-warned", NODE), TEAM)
        e.apply(job("job-busy", NODE), TEAM)
        e.node.set_util(TEAM, "job-busy", 90)
        e.apply(policy("susp", before="15s"), SUSP)
        e.apply(job("job-susp", NODE), SUSP)
        yield e
        cluster.kubectl("delete", "idlepolicy", "platform-wide", "-n", "gpu-steward", check=False)
        print(e.operator.log_text()[-4000:])


@pytest.fixture(scope="module")
def user(env: IdleEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A user's shell: PATH with kubectl and the plugin, KUBECONFIG with context namespace cli-team."""
    tmp = tmp_path_factory.mktemp("user")
    bindir = tmp / "bin"
    bindir.mkdir()
    pythonpath = os.pathsep.join([str(REPO / "operator"), str(REPO / "agent"), str(REPO / "testground")])
    for exe, func in (("kubectl-gpu_steward", "kubectl_main"), ("kubectl_complete-gpu_steward",
                                                                 "kubectl_complete_main")):
        path = bindir / exe
        path.write_text(f"#!/bin/sh\nPYTHONPATH={pythonpath} exec {sys.executable} -c "
                        f"'import sys; from gpu_steward.cli import {func}; sys.exit({func}())' \"$@\"\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    cfg = yaml.safe_load(Path(env.cluster.kubeconfig).read_text())
    ctx = cfg["contexts"][0]
    ctx["context"]["namespace"] = TEAM
    cfg["contexts"].append({"name": "other", "context": {**ctx["context"], "namespace": SUSP}})
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(cfg))
    assert env.cluster.bin_dir is not None
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONPATH")}
    shell = dict(base, PATH=f"{bindir}:{env.cluster.bin_dir}:{os.environ['PATH']}", KUBECONFIG=str(kubeconfig),
                 HOME=str(tmp))
    return {"env": shell, "kubeconfig": kubeconfig, "tmp": tmp}


def kgs(user: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``kubectl gpu-steward ARGS`` as typed in the user's shell."""
    return subprocess.run(["kubectl", "gpu-steward", *args], capture_output=True, text=True, timeout=90,
                          env=env or user["env"])


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stderr + res.stdout
    assert "Traceback" not in res.stderr
    return res.stdout


def _wait_stories(env: IdleEnv) -> None:
    wait_for(lambda: env.state("batch/v1", "Job", "job-susp", SUSP).get("phase") == "Suspended", 240, 1.0,
             "job-susp to be suspended")
    for api, kind, name in (("batch/v1", "Job", "job-warned"), (NB_API, "Notebook", "nb-warned")):
        wait_for(lambda a=api, k=kind, n=name: (env.state(a, k, n, TEAM).get("warn") or {}).get("done"), 120, 1.0,
                 f"{name}'s warning to be delivered")


def _events(env: IdleEnv, kind: str, name: str, ns: str) -> list[dict[str, Any]]:
    out = env.cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    return [e for e in json.loads(out)["items"] if e["involvedObject"]["name"] == name
            and e["involvedObject"]["kind"] == kind and (e.get("source") or {}).get("component") == "gpu-steward"]


@pytest.mark.parametrize("kind, api, name", [("Job", "batch/v1", "job-warned"), ("Notebook", NB_API, "nb-warned")])
def test_explain_a_warned_workload_agrees_with_the_operators_record_and_events(env: IdleEnv, user: dict[str, Any],
                                                                              kind: str, api: str, name: str) -> None:
    _wait_stories(env)
    state = env.state(api, kind, name, TEAM)
    data = json.loads(ok(kgs(user, "explain", f"{kind.lower()}/{name}", "-o", "json")))  # -n from the context
    assert data["workload"]["namespace"] == TEAM and data["state"] == "warned"
    rec = data["record"]
    assert rec["phase"] == state["phase"] == "Warned"
    assert rec["warningDelivered"] == state["warn"]["done"]
    assert rec["idleSince"] == state["idleSince"]
    assert rec["warningStatedSuspendAt"] == state["warnSuspendAt"]
    gov = data["policy"]["governedBy"]
    assert gov["policy"] == f"{TEAM}/team" and not gov["dryRun"] and gov["noticeBefore"] == "30m"
    assert rec["warningPolicy"].split("@")[0] == gov["policy"]
    assert {"policy": "gpu-steward/platform-wide", "lostOn": "namespace match"} in data["policy"]["lost"]
    events = _events(env, kind, name, TEAM)
    assert {e["reason"] for e in events} >= {"IdleWarning"}
    assert [n["reason"] for n in data["notices"]] == [e["reason"] for e in sorted(
        events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")]
    assert data["warning"]["eventRecorded"] and data["warning"]["channels"] == ["Slack", "Event"]
    assert data["workload"]["owner"] in ("ada@example.com", "lin@example.com")
    assert data["next"].startswith("suspension due at")
    text = ok(kgs(user, "explain", f"{kind.lower()}/{name}"))
    assert f"Policy:       {TEAM}/team  (enforcing, Suspend)" in text
    assert "lost:       gpu-steward/platform-wide (on namespace match)" in text
    assert "Warning:      delivered " + state["warn"]["done"] in text and "IdleWarning" in text
    assert yaml.safe_load(ok(kgs(user, "explain", f"{kind.lower()}/{name}", "-o", "yaml")))["state"] == "warned"


def test_explain_a_suspended_job(env: IdleEnv, user: dict[str, Any]) -> None:
    _wait_stories(env)
    wait_for(lambda: any(e["reason"] == "IdleSuspended" for e in _events(env, "Job", "job-susp", SUSP)), 60, 1.0,
             "the IdleSuspended Event")
    state = env.state("batch/v1", "Job", "job-susp", SUSP)
    data = json.loads(ok(kgs(user, "explain", "job/job-susp", "-n", SUSP, "-o", "json")))
    assert data["state"] == "suspended" and data["record"]["suspendedAt"] == state["suspend"]["done"]
    assert data["suspendedState"] is not None
    assert [n["reason"] for n in data["notices"]][:2] == ["IdleWarning", "IdleSuspended"]
    assert data["next"].startswith("suspended; resume with: gpu-steward resume job/job-susp -n cli-susp")
    # --context picks the other context, whose namespace is cli-susp
    assert json.loads(ok(kgs(user, "--context", "other", "explain", "job/job-susp", "-o", "json")))["state"] == \
        "suspended"


def test_top_lists_money_on_fire_first(env: IdleEnv, user: dict[str, Any]) -> None:
    _wait_stories(env)
    table = ok(kgs(user, "top")).splitlines()
    assert table[0].split() == ["WORKLOAD", "GPUS", "UTIL", "IDLE-FOR", "STATE", "COST/H"]
    names = [line.split()[0] for line in table[1:]]
    states = {line.split()[0]: line.split()[4] for line in table[1:]}
    assert states["job/job-warned"] == "warned" and states["notebook/nb-warned"] == "warned"
    assert states["job/job-busy"] in ("active", "unknown")
    assert names.index("job/job-busy") > max(names.index("job/job-warned"), names.index("notebook/nb-warned"))
    assert "job/job-susp" not in names  # another namespace
    wide = ok(kgs(user, "top", "-o", "wide")).splitlines()[0].split()
    assert wide[-4:] == ["OWNER", "SUSPEND-AT", "COST", "NOTE"]
    everything = json.loads(ok(kgs(user, "top", "-A", "-o", "json")))
    rows = {(r["namespace"], r["workload"]): r for r in everything["items"]}
    assert rows[(SUSP, "job/job-susp")]["state"] == "suspended"
    assert rows[(TEAM, "job/job-warned")]["suspendAt"]
    assert list(rows)[-1][1] == "job/job-susp" or rows[list(rows)[-1]]["state"] == "suspended"
    assert yaml.safe_load(ok(kgs(user, "-n", SUSP, "top", "-o", "yaml")))["items"][0]["workload"] == "job/job-susp"
    assert ok(kgs(user, "--context", "other", "top")).splitlines()[1].split()[0] == "job/job-susp"


def test_version_help_and_completion(env: IdleEnv, user: dict[str, Any]) -> None:
    assert ok(kgs(user, "--version")).startswith("kubectl gpu-steward 0.1.0")
    bare = ok(kgs(user))
    assert "usage: kubectl gpu-steward" in bare and "explain" in bare and "top" in bare
    assert "complete -o default -F" in ok(kgs(user, "completion", "bash"))
    assert "compdef" in ok(kgs(user, "completion", "zsh"))
    # kubectl (>= 1.26) completes plugin arguments through kubectl_complete-gpu_steward
    res = subprocess.run(["kubectl", "__complete", "gpu-steward", "to"], capture_output=True, text=True,
                         timeout=60, env=user["env"])
    assert "top" in res.stdout.split(), res.stdout + res.stderr
    res = subprocess.run(["kubectl", "__complete", "gpu-steward", "top", "-o", ""], capture_output=True,
                         text=True, timeout=60, env=user["env"])
    assert {"table", "wide", "json", "yaml"} <= set(res.stdout.split())


def _unreachable(user: dict[str, Any]) -> dict[str, str]:
    cfg = yaml.safe_load(user["kubeconfig"].read_text())
    cfg["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    path = user["tmp"] / "unreachable"
    path.write_text(yaml.safe_dump(cfg))
    return dict(user["env"], KUBECONFIG=str(path))


def _forbidden(env: IdleEnv, user: dict[str, Any]) -> dict[str, str]:
    env.cluster.kubectl("create", "serviceaccount", "nobody", "-n", TEAM, check=False)
    token = env.cluster.kubectl("create", "token", "nobody", "-n", TEAM).stdout.strip()
    path = env.cluster.kubeconfig_for_token(token, user["tmp"] / "nobody")
    return dict(user["env"], KUBECONFIG=str(path))


@pytest.mark.parametrize("case, args, code, message", [
    ("no kubeconfig", ["top"], 1, "no cluster configured"),
    ("unknown context", ["--context", "nope", "top"], 1, "context 'nope' not found"),
    ("unreachable", ["top"], 1, "cannot reach the API server"),
    ("forbidden", ["top"], 1, "forbidden"),
    ("not found", ["explain", "job/nope"], 1, "job/nope not found in namespace cli-team"),
    ("no adapter", ["explain", "daemonset/x"], 2, "no adapter"),
    ("CRD not installed", ["explain", "rayjob/x"], 1, "CRD is not installed"),
    ("bad output", ["top", "-o", "bogus"], 2, "invalid choice"),
    ("bad flag", ["top", "--bogus"], 2, "unrecognized arguments"),
    ("bad snooze", ["snooze", "job/job-warned", "--for", "forever"], 2, "invalid duration"),
    ("resume not found", ["resume", "job/nope"], 1, "not found in namespace cli-team"),
])
def test_user_errors_are_one_useful_line(env: IdleEnv, user: dict[str, Any], case: str, args: list[str], code: int,
                                         message: str) -> None:
    shell = {"no kubeconfig": dict(user["env"], KUBECONFIG=str(user["tmp"] / "absent")),
             "unreachable": _unreachable(user) if case == "unreachable" else None,
             "forbidden": _forbidden(env, user) if case == "forbidden" else None}.get(case) or user["env"]
    res = kgs(user, *args, env=shell)
    assert res.returncode == code, res.stderr + res.stdout
    assert "Traceback" not in res.stderr + res.stdout
    assert message in res.stderr, res.stderr
    assert res.stderr.startswith("error:") or "usage:" in res.stderr
    if code == 1:
        assert len(res.stderr.strip().splitlines()) <= 2  # the error and what to do
