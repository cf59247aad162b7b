"""Where the memory per GPU pod goes (tracemalloc; prints numbers, asserts nothing).

    python bench/memory_profile.py [--pods 8000] [--main /path/to/main/checkout]

Pod bodies shaped like the apiserver's (defaults, the service-account volume, managedFields, KWOK's status),
then the bytes per pod held by: a decoded LIST of them (what any client holds while it decodes a list
whole), the index as it was before (a slim dict plus an entry per pod, read from ``--main``), and the
index now (one slotted entry per pod, shared values).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any


def pod(i: int, per_notebook: int = 8) -> dict[str, Any]:
    nb = f"nb-{i // per_notebook:05d}"
    mount = {"name": "kube-api-access-x1y2z", "readOnly": True,
             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{nb}-{i % per_notebook}", "namespace": "scale", "uid": f"8c0e6a3e-5b1d-4c2f-9a7e-{i:012d}",
            "resourceVersion": str(100000 + i), "creationTimestamp": "2026-11-27T14:30:00Z",
            "labels": {"notebook-name": nb, "team": f"t{i % 20}"},
            "annotations": {"gpusteward.dev/simulate-running": "true"},
            "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": nb,
                                 "uid": f"0f9d1c2b-7a6e-4d3c-8b5a-{i // per_notebook:012d}", "controller": True}],
            "managedFields": [
                {"manager": "python", "operation": "Update", "apiVersion": "v1", "time": "2026-11-27T14:30:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:x": {}},
                                                                       "f:labels": {".": {}, "f:a": {}, "f:b": {}},
                                                                       "f:ownerReferences": {".": {}, "k:{}": {}}},
                                                        "f:spec": {"f:containers": {"k:{\"name\":\"m\"}": {
                                                            ".": {}, "f:image": {}, "f:name": {},
                                                            "f:resources": {".": {}, "f:limits": {}}}}}}},
                {"manager": "kwok", "operation": "Update", "apiVersion": "v1", "time": "2026-11-27T14:30:02Z",
                 "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}},
                                           "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {},
                                           "f:podIP": {}, "f:podIPs": {}, "f:startTime": {}}}}],
        },
        "spec": {
            "volumes": [{"name": "kube-api-access-x1y2z", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}}],
            "containers": [{"name": "m", "image": "train:1", "resources": {"limits": {"nvidia.com/gpu": "1"},
                                                                           "requests": {"nvidia.com/gpu": "1"}},
                            "volumeMounts": [mount], "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": f"scale-{i // 8:05d}",
            "securityContext": {}, "schedulerName": "default-scheduler", "priority": 0,
            "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300},
                            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": f"10.1.{i // 250}.{i % 250}",
            "podIPs": [{"ip": f"10.1.{i // 250}.{i % 250}"}], "startTime": "2026-11-27T14:30:02Z",
            "qosClass": "BestEffort",
            "conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": "2026-11-27T14:30:02Z"}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": "m", "image": "train:1", "imageID": "", "ready": True, "restartCount": 0,
                                   "started": True, "containerID": f"kwok://{i:064d}",
                                   "state": {"running": {"startedAt": "2026-11-27T14:30:02Z"}},
                                   "lastState": {}}],
        },
    }


def held(build: Any) -> tuple[Any, int]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    value = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return value, after - before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=8000)
    ap.add_argument("--main", type=Path, default=None, help="a checkout of the version before, for its index")
    args = ap.parse_args()
    n = args.pods
    raw = json.dumps({"kind": "PodList", "items": [pod(i) for i in range(n)]}).encode()
    print(f"{n} pods: {len(raw) / n:.0f} bytes of JSON per pod")
    decoded, size = held(lambda: json.loads(raw))
    print(f"decoded LIST:             {size / n:8.0f} bytes per pod")
    items = decoded["items"]
    if args.main is not None:
        spec = importlib.util.spec_from_file_location("old_index", args.main / "operator/gpu_steward/index.py")
        assert spec is not None and spec.loader is not None
        old = importlib.util.module_from_spec(spec)
        sys.modules["old_index"] = old
        spec.loader.exec_module(old)

        def old_registry() -> Any:
            reg = old.Registry()
            for p in items:
                reg.pod_event("ADDED", p)
            return reg

        _, size = held(old_registry)
        print(f"index before (slim dict + entry): {size / n:8.0f} bytes per pod")
    from gpu_steward.index import Registry

    def new_registry() -> Any:
        reg = Registry()
        for p in items:
            reg.pod_event("ADDED", p)
        return reg

    reg, size = held(new_registry)
    print(f"index now (slotted entry):        {size / n:8.0f} bytes per pod")
    view, size = held(lambda: list(reg.pod_view()))
    print(f"cost-pass bodies if all were held at once: {size / n:8.0f} bytes per pod (they are built one at a time)")
    del view


if __name__ == "__main__":
    main()
