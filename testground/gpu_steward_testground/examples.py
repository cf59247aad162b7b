"""A GPU workload of each kind an upstream controller runs, for the acceptance tests and the demo: the
objects to apply, the controllers it needs, and how to tell it is suspended.

Every pod lands on ``node`` and asks for GPUs; KWOK keeps it Running (pods of Jobs carry the annotation
that stops KWOK from completing them), so the workload stays up until its controller takes it down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpu_steward_testground.build import RUN_FOREVER_ANNOTATION
from gpu_steward_testground.upstream import namespace_label

JOBSET_API, RAY_API = "jobset.x-k8s.io/v1alpha2", "ray.io/v1"
TRAINER_API, KUBEFLOW_API, LWS_API = "trainer.kubeflow.org/v1alpha1", "kubeflow.org/v1", "leaderworkerset.x-k8s.io/v1"
NOTEBOOK_STOPPED = "kubeflow-resource-stopped"
ANY = object()  # "any value present"
RUNTIME = "gs-torch"  # the ClusterTrainingRuntime the TrainJob example uses


@dataclass
class Example:
    """One workload: the objects to apply (cluster-scoped ones have no namespace), the controllers it needs
    (names in ``build.CONTROLLERS``; "notebook" is the test ground's stand-in), the labels its namespace
    needs (a controller's webhooks), the field its controller honours and the value that means suspended,
    and the GPUs its pods hold."""

    api_version: str
    kind: str
    name: str
    objects: list[dict[str, Any]]
    controllers: tuple[str, ...]
    gpus: int
    path: tuple[str, ...] = ("spec", "suspend")
    value: Any = True
    namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        """The name kubectl takes for it (plural.group for custom resources)."""
        group = self.api_version.split("/")[0] if "/" in self.api_version else ""
        plural = self.kind.lower() + "s"
        return f"{plural}.{group}" if "." in group else plural

    def suspended(self, obj: dict[str, Any]) -> bool:
        value: Any = obj
        for part in self.path:
            value = value.get(part) if isinstance(value, dict) else None
        if self.value is ANY:
            return value is not None
        return bool(value == self.value and type(value) is type(self.value))


def gpu_pod_template(node: str, gpus: int = 1, container: str = "main", restart: str | None = "Never"
                     ) -> dict[str, Any]:
    """A long-running pod template on ``node`` asking for ``gpus`` (none: no resources at all)."""
    main: dict[str, Any] = {"name": container, "image": "registry.example/train:1"}
    if gpus:
        main["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec: dict[str, Any] = {"nodeSelector": {"kubernetes.io/hostname": node}, "containers": [main]}
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"annotations": {RUN_FOREVER_ANNOTATION: "true"}}, "spec": spec}


def rayjob(name: str, node: str, meta: dict[str, Any], *, worker_gpus: int = 2,
           shutdown_after: bool = True) -> dict[str, Any]:
    """A RayJob (K8sJobMode) whose RayCluster has a head without GPUs and one worker with ``worker_gpus``.
    ``shutdown_after``: spec.shutdownAfterJobFinishes (KubeRay suspends only RayJobs that set it)."""
    head = gpu_pod_template(node, gpus=0, container="ray-head", restart=None)
    worker = gpu_pod_template(node, gpus=worker_gpus, container="ray-worker", restart=None)
    # the submitter waits on the Ray job like a real one (KWOK would complete its pod at once)
    submitter = gpu_pod_template(node, gpus=0, container="ray-job-submitter")
    return {"apiVersion": RAY_API, "kind": "RayJob", "metadata": {"name": name, **meta}, "spec": {
        "entrypoint": "python train.py", "submissionMode": "K8sJobMode", "shutdownAfterJobFinishes": shutdown_after,
        "submitterPodTemplate": submitter,
        "rayClusterSpec": {"headGroupSpec": {"rayStartParams": {}, "template": head}, "workerGroupSpecs": [
            {"groupName": "gpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 1, "rayStartParams": {},
             "template": worker}]}}}


def example(kind: str, name: str, node: str, meta: dict[str, Any] | None = None) -> Example:
    """The example ``kind`` named ``name`` with its pods on ``node``; ``meta`` is merged into its metadata
    (an owner annotation, a Kueue queue label)."""
    meta = meta or {}
    if kind == "JobSet":
        js = {"apiVersion": JOBSET_API, "kind": "JobSet", "metadata": {"name": name, **meta},
              "spec": {"replicatedJobs": [{"name": "workers", "replicas": 1, "template": {"spec": {
                  "parallelism": 2, "completions": 2, "backoffLimit": 0, "template": gpu_pod_template(node)}}}]}}
        # JobSet's webhooks default a JobSet's spec, which its controller relies on
        return Example(JOBSET_API, kind, name, [js], ("jobset",), 2,
                       namespace_labels={namespace_label("jobset"): "on"})
    if kind == "RayJob":
        return Example(RAY_API, kind, name, [rayjob(name, node, meta)], ("kuberay",), 2)
    if kind == "TrainJob":
        # the platform team's runtime (cluster-scoped); the TrainJob runs as a JobSet made from it
        runtime = {"apiVersion": TRAINER_API, "kind": "ClusterTrainingRuntime", "metadata": {"name": RUNTIME}, "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {"spec": {"replicatedJobs": [{"name": "node", "template": {
                "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                "spec": {"template": gpu_pod_template(node, gpus=0, container="node")}}}]}}}}
        tj = {"apiVersion": TRAINER_API, "kind": "TrainJob", "metadata": {"name": name, **meta},
              "spec": {"runtimeRef": {"name": RUNTIME}, "trainer": {
                  "numNodes": 1, "resourcesPerNode": {"limits": {"nvidia.com/gpu": "2"}}}}}
        return Example(TRAINER_API, kind, name, [runtime, tj], ("jobset", "trainer"), 2,
                       namespace_labels={namespace_label("jobset"): "on"})
    if kind == "PyTorchJob":
        replica = {"replicas": 1, "restartPolicy": "OnFailure",
                   "template": gpu_pod_template(node, container="pytorch")}  # the container name it requires
        pj = {"apiVersion": KUBEFLOW_API, "kind": "PyTorchJob", "metadata": {"name": name, **meta},
              "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}}}
        return Example(KUBEFLOW_API, kind, name, [pj], ("training-operator",), 2, ("spec", "runPolicy", "suspend"))
    if kind == "LeaderWorkerSet":
        lws = {"apiVersion": LWS_API, "kind": "LeaderWorkerSet", "metadata": {"name": name, **meta},
               "spec": {"replicas": 1, "leaderWorkerTemplate": {
                   "size": 2, "workerTemplate": gpu_pod_template(node, restart=None)}}}
        # LWS's pod webhook labels each pod with its group, which its controller relies on
        return Example(LWS_API, kind, name, [lws], ("lws",), 2, ("spec", "replicas"), 0,
                       namespace_labels={namespace_label("lws"): "on"})
    if kind == "Notebook":
        lab = gpu_pod_template(node, container="lab", restart=None)["spec"]  # the template has a spec only
        nb = {"apiVersion": KUBEFLOW_API, "kind": "Notebook", "metadata": {"name": name, **meta},
              "spec": {"template": {"spec": lab}}}
        return Example(KUBEFLOW_API, kind, name, [nb], ("notebook",), 1, ("metadata", "annotations", NOTEBOOK_STOPPED),
                       ANY)
    raise ValueError(f"no example of {kind!r}: one of {', '.join(EXAMPLE_KINDS)}")


EXAMPLE_KINDS = ("JobSet", "RayJob", "TrainJob", "PyTorchJob", "LeaderWorkerSet", "Notebook")
