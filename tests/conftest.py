"""Session-wide fixtures: the real local control plane and the paths tests share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from gpu_steward_testground.runner import ControlPlane

# CI runs the property tests with a fixed seed (same examples every run, so a red CI is always
# reproducible); developers' runs keep exploring new examples.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _main_checkout(root: Path) -> Path:
    """In a git worktree, ``.git`` is a file naming ``<main checkout>/.git/worktrees/<name>``:
    the shared folder sits beside the main checkout, not beside the worktree."""
    dotgit = root / ".git"
    if dotgit.is_file():
        gitdir = dotgit.read_text().partition("gitdir:")[2].strip()
        if "/.git/" in gitdir:
            return Path(gitdir.split("/.git/", 1)[0])
    return root


UPSTREAM_CRDS = next((p for p in (REPO_ROOT.parent / "shared" / "upstream-crds",
                                  _main_checkout(REPO_ROOT).parent / "shared" / "upstream-crds") if p.is_dir()),
                     REPO_ROOT.parent / "shared" / "upstream-crds")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One real control plane (etcd, apiserver, controller-manager, scheduler, KWOK) per test session."""
    cp = ControlPlane(workdir=tmp_path_factory.mktemp("controlplane"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def upstream_crds() -> Path:
    """The real upstream CRDs (Kubeflow Notebook, JobSet, Kueue Workload); not ours to commit."""
    if not UPSTREAM_CRDS.is_dir():
        pytest.skip(f"upstream CRDs folder {UPSTREAM_CRDS} is absent (it lives in the shared folder beside the repo)")
    return UPSTREAM_CRDS


def _upstream(name: str, cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from fixtures.upstream_env import running_controller

    yield from running_controller(name, cluster, tmp_path_factory.mktemp(name))


# The real upstream controllers, each a child process for the test module that asks for it (built on
# first use, like the control plane; `make controlplane` builds them ahead). Per module, not per session:
# a controller left running would act on what later modules create to test field writes with nobody
# reacting (a Job labelled for a queue, a hand-made JobSet).
@pytest.fixture(scope="module")
def jobset_controller(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from _upstream("jobset", cluster, tmp_path_factory)


@pytest.fixture(scope="module")
def kuberay_controller(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from _upstream("kuberay", cluster, tmp_path_factory)


@pytest.fixture(scope="module")
def kueue_controller(cluster: ControlPlane, jobset_controller: Any, kuberay_controller: Any,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Kueue enables an integration only for kinds whose CRDs exist when it starts: JobSet's and KubeRay's first.
    yield from _upstream("kueue", cluster, tmp_path_factory)


@pytest.fixture(scope="module")
def lws_controller(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from _upstream("lws", cluster, tmp_path_factory)


@pytest.fixture(scope="module")
def training_operator_controller(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from _upstream("training-operator", cluster, tmp_path_factory)


@pytest.fixture(scope="module")
def trainer_controller(cluster: ControlPlane, jobset_controller: Any,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # a TrainJob runs as a JobSet: the Trainer needs JobSet's CRD and controller
    yield from _upstream("trainer", cluster, tmp_path_factory)


@pytest.fixture(scope="module")
def notebook_controller(cluster: ControlPlane, upstream_crds: Path,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test ground's stand-in for Kubeflow's notebook controller (not published as a Go module)."""
    from gpu_steward_testground.notebookcontroller import NotebookStandIn

    cluster.apply_crds(upstream_crds / "kubeflow.org_notebooks.yaml")
    stand_in = NotebookStandIn(cluster.kubeconfig, tmp_path_factory.mktemp("notebooks") / "stand-in.log").start()
    try:
        yield stand_in
    finally:
        stand_in.stop()
