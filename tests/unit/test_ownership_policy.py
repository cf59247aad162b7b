"""Ownership admission of GPU pods: warn / enforce, only for pods that request GPUs."""

from __future__ import annotations

from gpu_steward.policy.ownership import admission_verdict, missing_labels

REQUIRED = ("gpusteward.dev/owner", "gpusteward.dev/team")


def pod(labels, gpus=1):
    res = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "resources": res}]}}


def test_missing_labels_only_for_gpu_pods_and_blank_counts_as_missing():
    assert missing_labels(pod({}), REQUIRED) == list(REQUIRED)
    assert missing_labels(pod({"gpusteward.dev/owner": "alice", "gpusteward.dev/team": " "}), REQUIRED) == \
        ["gpusteward.dev/team"]
    assert missing_labels(pod({}, gpus=0), REQUIRED) == []


def test_modes():
    assert admission_verdict(pod({}), REQUIRED, "off") == ("allow", None)
    verdict, message = admission_verdict(pod({"gpusteward.dev/owner": "a"}), REQUIRED, "warn")
    assert verdict == "warn" and "gpusteward.dev/team" in message and "gpusteward.dev/owner" not in message
    verdict, message = admission_verdict(pod({}), REQUIRED, "enforce")
    assert verdict == "reject" and "gpusteward.dev/owner, gpusteward.dev/team" in message
    ok = pod({"gpusteward.dev/owner": "a", "gpusteward.dev/team": "t"})
    assert admission_verdict(ok, REQUIRED, "enforce") == ("allow", None)
