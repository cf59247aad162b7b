"""Session-wide fixtures: the real local control plane and the paths tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_steward.localcluster.runner import ControlPlane

REPO_ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_CRDS = REPO_ROOT.parent / "shared" / "upstream-crds"


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
