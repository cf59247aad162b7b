"""A STAND-IN for Kubeflow's notebook controller, for the test ground only.

Kubeflow's notebook controller is not published as a Go module, so it cannot be built here like the
other upstream controllers. This process speaks the part of its contract GPU Steward relies on, and
nothing more:

- each ``kubeflow.org/v1`` Notebook gets a StatefulSet of the same name, controlled by the Notebook,
  whose pod template is the Notebook's ``spec.template`` (labelled ``statefulset`` and
  ``notebook-name`` as upstream does);
- while the Notebook carries the annotation ``kubeflow-resource-stopped`` the StatefulSet has 0
  replicas, otherwise 1 — set on every pass, so a hand edit of the replicas is reverted as upstream.

No Service, no Istio VirtualService, no culling: those are not part of what GPU Steward touches.
Run it with ``python -m gpu_steward_testground.notebookcontroller --kubeconfig PATH``.
"""

from __future__ import annotations

import argparse
import copy
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from gpu_steward_testground.processes import die_with_parent, stop_process

STOPPED_ANNOTATION = "kubeflow-resource-stopped"
GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "notebooks"


def desired_statefulset(notebook: dict[str, Any]) -> dict[str, Any]:
    """The StatefulSet the notebook controller keeps for ``notebook``."""
    meta = notebook["metadata"]
    name = meta["name"]
    template = copy.deepcopy((notebook.get("spec") or {}).get("template") or {})
    labels = {**((template.get("metadata") or {}).get("labels") or {}), "statefulset": name, "notebook-name": name}
    template["metadata"] = {**(template.get("metadata") or {}), "labels": labels}
    stopped = STOPPED_ANNOTATION in (meta.get("annotations") or {})
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": meta["namespace"], "ownerReferences": [{
            "apiVersion": notebook["apiVersion"], "kind": "Notebook", "name": name, "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": 0 if stopped else 1, "serviceName": "", "selector": {"matchLabels": {"statefulset": name}},
                 "template": template},
    }


def reconcile(apps: client.AppsV1Api, notebook: dict[str, Any]) -> None:
    want = desired_statefulset(notebook)
    ns, name = want["metadata"]["namespace"], want["metadata"]["name"]
    try:
        have = apps.read_namespaced_stateful_set(name, ns)
    except ApiException as exc:
        if exc.status != 404:
            raise
        apps.create_namespaced_stateful_set(ns, want)
        return
    if have.spec.replicas != want["spec"]["replicas"]:
        apps.patch_namespaced_stateful_set(name, ns, {"spec": {"replicas": want["spec"]["replicas"]}})


def run(kubeconfig: str, interval: float, stop: threading.Event) -> None:
    api = config.new_client_from_config(config_file=kubeconfig)
    custom, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    while not stop.is_set():
        try:
            notebooks = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        except ApiException as exc:
            print(f"listing notebooks failed: {exc.status} {exc.reason}", file=sys.stderr, flush=True)
            notebooks = []
        for nb in notebooks:
            if nb["metadata"].get("deletionTimestamp"):
                continue
            try:
                reconcile(apps, nb)
            except ApiException as exc:  # a conflict or a race with the garbage collector: next pass
                print(f"{nb['metadata']['namespace']}/{nb['metadata']['name']}: {exc.status} {exc.reason}",
                      file=sys.stderr, flush=True)
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stand-in for Kubeflow's notebook controller (test ground only)")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between reconcile passes")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("notebook controller stand-in running", flush=True)
    run(args.kubeconfig, args.interval, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())


class NotebookStandIn:
    """The stand-in as a child process of the test ground, against ``kubeconfig``."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> NotebookStandIn:
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.popen = subprocess.Popen([sys.executable, "-m", "gpu_steward_testground.notebookcontroller",
                                       "--kubeconfig", str(self.kubeconfig)], stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        out.close()
        return self

    def stop(self) -> None:
        stop_process(self.popen)
