"""The resume subcommand's argument handling (the cluster round trip is in tests/integration)."""

from __future__ import annotations

import pytest

from gpu_steward import cli
from gpu_steward.workloads.cli import parse_target


@pytest.mark.parametrize("text, kind, first_version, name", [
    ("job/train", "Job", "batch/v1", "train"),
    ("Jobs/train", "Job", "batch/v1", "train"),
    ("sts/db", "StatefulSet", "apps/v1", "db"),
    ("deploy/serve", "Deployment", "apps/v1", "serve"),
    ("notebook/alice-nb", "Notebook", "kubeflow.org/v1", "alice-nb"),
    ("notebooks.kubeflow.org/alice-nb", "Notebook", "kubeflow.org/v1", "alice-nb"),
    ("jobset/big", "JobSet", "jobset.x-k8s.io/v1alpha2", "big"),
    ("pytorchjob/bert", "PyTorchJob", "kubeflow.org/v1", "bert"),
    ("rayjob/tune", "RayJob", "ray.io/v1", "tune"),
    ("raycluster/r", "RayCluster", "ray.io/v1", "r"),
    ("workload/job-x-1", "Workload", "kueue.x-k8s.io/v1beta2", "job-x-1"),
])
def test_parse_target(text: str, kind: str, first_version: str, name: str) -> None:
    got_kind, versions, got_name = parse_target(text)
    assert (got_kind, versions[0], got_name) == (kind, first_version, name)


@pytest.mark.parametrize("text, match", [
    ("train", "<kind>/<name>"),
    ("job/", "<kind>/<name>"),
    ("job/a/b", "<kind>/<name>"),
    ("daemonset/x", "unknown kind 'daemonset'"),
])
def test_parse_target_rejects(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_target(text)


def test_resume_is_registered_beside_the_other_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["resume", "job/train", "-n", "ml", "--kubeconfig", "/k", "--dry-run"])
    assert (args.command, args.target, args.namespace, args.kubeconfig, args.dry_run) == \
        ("resume", "job/train", "ml", "/k", True)
    assert parser.parse_args(["crds", "check"]).command == "crds"
    # a bad target is refused before any cluster is contacted
    assert cli.main(["resume", "pod/x", "--kubeconfig", "/nonexistent"]) == 2
    assert "unknown kind" in capsys.readouterr().err


@pytest.mark.parametrize("span, message", [("forever", "invalid duration"), ("0s", "longer than 0s"),
                                           ("99999d", "longer than 36500 days")])
def test_snooze_refuses_a_bad_length_before_any_cluster_is_contacted(span: str, message: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["snooze", "job/train", "--for", span, "--kubeconfig", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --for:") and message in err
