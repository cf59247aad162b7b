"""Plain values shared by workload resolution, the adapters and the orchestration: no I/O here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# lookup(api_version, kind, namespace, name) -> the object as a dict, or None when it does not exist
# (or its kind is not served by this cluster). Tests pass a dict-backed function; the operator passes
# a cached getter over gpu_steward.kube.Kube.
Lookup = Callable[[str, str, "str | None", str], "JSON | None"]
# owned(api_version, kind, namespace, owner_uid) -> objects of that kind in that namespace whose
# ownerReferences name owner_uid. Only needed to find a Kueue Workload, whose name Kueue generates.
Owned = Callable[[str, str, "str | None", str], "list[JSON]"]

# Our deliberate annotations (the shared vocabulary in DESIGN.md / common.md).
SUSPENDED_STATE_ANNOTATION = "gpusteward.dev/suspended-state"
RESUME_ANNOTATION = "gpusteward.dev/resume"
IDLE_STATE_ANNOTATION = "gpusteward.dev/idle-state"  # the idle engine's state (on every workload it noticed)
SNOOZE_ANNOTATION = "gpusteward.dev/snooze-until"  # owner: leave it alone until then (bounded)
EXEMPT_ANNOTATION = "gpusteward.dev/exempt-until"  # owner/platform: exempt until then (bounded)

# Conventions of other projects.
NOTEBOOK_STOPPED_ANNOTATION = "kubeflow-resource-stopped"
NOTEBOOK_CREATOR_ANNOTATION = "notebooks.kubeflow.org/creator"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_WORKLOAD_ANNOTATION = "kueue.x-k8s.io/workload"  # set by Kueue on admitted pods
KUEUE_GROUP = "kueue.x-k8s.io"
# Served versions of the Kueue Workload CRD, newest first (v1beta2 is the storage version upstream).
KUEUE_WORKLOAD_VERSIONS = ("kueue.x-k8s.io/v1beta2", "kueue.x-k8s.io/v1beta1")


@dataclass(frozen=True)
class KindInfo:
    """A kind an adapter suspends: its API versions (newest first), the kubectl resource that names it
    unambiguously, and the words the CLI accepts for it."""

    kind: str
    api_versions: tuple[str, ...]
    resource: str
    aliases: tuple[str, ...]

    @property
    def api_version(self) -> str:
        return self.api_versions[0]


# The one list of suspendable kinds: the idle loop lists suspended ones of each, the views and the CLI
# name them, notices print their kubectl resource. Kueue's Workload is not here: it is a target,
# never what people name (the CLI accepts it separately).
SUSPENDABLE_KINDS: tuple[KindInfo, ...] = (
    KindInfo("Job", ("batch/v1",), "job", ("job", "jobs")),
    KindInfo("StatefulSet", ("apps/v1",), "statefulset", ("statefulset", "statefulsets", "sts")),
    KindInfo("Deployment", ("apps/v1",), "deployment", ("deployment", "deployments", "deploy")),
    KindInfo("Notebook", ("kubeflow.org/v1", "kubeflow.org/v1beta1", "kubeflow.org/v1alpha1"),
             "notebooks.kubeflow.org", ("notebook", "notebooks")),
    KindInfo("JobSet", ("jobset.x-k8s.io/v1alpha2",), "jobsets.jobset.x-k8s.io", ("jobset", "jobsets")),
    KindInfo("TrainJob", ("trainer.kubeflow.org/v1alpha1",), "trainjobs.trainer.kubeflow.org",
             ("trainjob", "trainjobs")),
    KindInfo("PyTorchJob", ("kubeflow.org/v1",), "pytorchjobs.kubeflow.org", ("pytorchjob", "pytorchjobs")),
    KindInfo("TFJob", ("kubeflow.org/v1",), "tfjobs.kubeflow.org", ("tfjob", "tfjobs")),
    # training-operator v1 serves MPIJob as kubeflow.org/v1; the standalone mpi-operator as v2beta1
    KindInfo("MPIJob", ("kubeflow.org/v2beta1", "kubeflow.org/v1"), "mpijobs.kubeflow.org", ("mpijob", "mpijobs")),
    KindInfo("XGBoostJob", ("kubeflow.org/v1",), "xgboostjobs.kubeflow.org", ("xgboostjob", "xgboostjobs")),
    KindInfo("PaddleJob", ("kubeflow.org/v1",), "paddlejobs.kubeflow.org", ("paddlejob", "paddlejobs")),
    KindInfo("JAXJob", ("kubeflow.org/v1",), "jaxjobs.kubeflow.org", ("jaxjob", "jaxjobs")),
    KindInfo("RayJob", ("ray.io/v1",), "rayjobs.ray.io", ("rayjob", "rayjobs")),
    KindInfo("RayCluster", ("ray.io/v1",), "rayclusters.ray.io", ("raycluster", "rayclusters")),
    KindInfo("LeaderWorkerSet", ("leaderworkerset.x-k8s.io/v1",), "leaderworkersets.leaderworkerset.x-k8s.io",
             ("leaderworkerset", "leaderworkersets", "lws")),
)
# Kubeflow training-operator kinds: all suspended through spec.runPolicy.suspend.
TRAINING_OPERATOR_KINDS = ("PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "JAXJob")


def listed_versions() -> tuple[tuple[str, str], ...]:
    """(api_version, kind) to list each suspendable kind by: one version per CRD, since listing two
    served versions of one CRD returns every object twice. MPIJob's two versions are two different
    CRDs (mpi-operator's v2beta1, training-operator's v1) and at most one is installed: both listed."""
    return (*((k.api_version, k.kind) for k in SUSPENDABLE_KINDS), ("kubeflow.org/v1", "MPIJob"))


def group_of(api_version: str) -> str:
    """'batch/v1' -> 'batch'; 'v1' (the core group) -> ''."""
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True)
class WorkloadRef:
    api_version: str
    kind: str
    namespace: str | None
    name: str
    uid: str | None = None

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}" + (f" -n {self.namespace}" if self.namespace else "")

    @classmethod
    def of(cls, obj: JSON) -> WorkloadRef:
        meta = obj.get("metadata") or {}
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], meta.get("uid"))


@dataclass(frozen=True)
class Owner:
    name: str | None = None
    email: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class Resolution:
    """What a GPU pod belongs to.

    ``workload`` is what people see and name (the Job, the Notebook); ``target`` is the object an
    adapter patches — the same object, except for Kueue-managed workloads, where it is Kueue's
    ``Workload``. ``chain`` runs from the pod up to ``workload`` (``target`` appended when it differs);
    ``objects`` holds the same objects as dicts, for owner lookup. When ``suspendable`` is false,
    ``reason`` says why (bare pod, unknown controller, missing owner, ...) and the pod can only be
    notified about.
    """

    workload: WorkloadRef | None
    target: WorkloadRef | None
    chain: tuple[WorkloadRef, ...]
    suspendable: bool
    reason: str = ""
    objects: tuple[JSON, ...] = field(default=(), repr=False, compare=False)
    # False when the answer may change without the pod changing: an owner (or its kind's CRD) or a Kueue
    # Workload not there *yet*. Such a resolution is not cached, it is tried again.
    final: bool = True

    @property
    def kueue_managed(self) -> bool:
        return self.target is not None and self.target.group == KUEUE_GROUP
