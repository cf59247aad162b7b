"""The one Kube object is shared by the evaluation loops, kopf's handler threads and the Slack endpoint:
kind lookups must hold up under threads while misses (CRDs that are not installed) make the dynamic
client discover again, and a CRD installed later must be found."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from gpu_steward.kube import Kube
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster


def test_lookups_from_many_threads_survive_misses_that_rediscover(cluster: ControlPlane) -> None:
    kube = Kube(cluster.api_client())
    kube.MISSING_KIND_RECHECK_SECONDS = 0.0  # every miss discovers again: the worst case
    errors: list[BaseException] = []
    kinds = [("batch/v1", "Job"), ("apps/v1", "StatefulSet"), ("apps/v1", "Deployment"), ("v1", "Pod"),
             ("v1", "ConfigMap"), ("policy/v1", "PodDisruptionBudget")]

    def worker(i: int) -> None:
        try:
            for n in range(15):
                assert kube.list_optional("example.invalid/v1", f"Nothing{i}x{n}") == []  # a miss
                api_version, kind = kinds[(i + n) % len(kinds)]
                kube.list(api_version, kind, "default")
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, repr(errors[:3])


def test_a_miss_is_remembered_and_a_crd_installed_later_is_found_after_the_recheck_interval(
        cluster: ControlPlane, tmp_path: Path) -> None:
    kube = Kube(cluster.api_client())
    kube.MISSING_KIND_RECHECK_SECONDS = 300.0
    assert kube.list_optional("later.gpusteward.dev/v1", "Widget") == []
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.later.gpusteward.dev"},
        "spec": {"group": "later.gpusteward.dev", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]},
    }
    path = tmp_path / "widget-crd.yaml"
    path.write_text(yaml.safe_dump(crd))
    cluster.apply_crds(path)
    try:
        with pytest.raises(ResourceNotFoundError):  # remembered as missing: no rediscovery yet
            kube.list("later.gpusteward.dev/v1", "Widget", "default")
        kube.MISSING_KIND_RECHECK_SECONDS = 0.0  # the interval has passed
        assert kube.list("later.gpusteward.dev/v1", "Widget", "default") == []  # found: served, empty
    finally:
        cluster.kubectl("delete", "crd", "widgets.later.gpusteward.dev", "--wait=false")
