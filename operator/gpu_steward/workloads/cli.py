"""The owner's commands: ``gpu-steward resume <kind>/<name> -n <namespace>`` (one-command resume) and
``gpu-steward snooze <kind>/<name> -n <namespace> --for 2h`` (a bounded snooze).

resume
It does two things, in this order, and prints both:
1. sets ``gpusteward.dev/resume: "true"`` on the workload — the operator's idle engine reads it,
   ends the idle episode (so the workload is not suspended again straight away) and clears it;
2. restores the workload right now through its adapter, from the ``gpusteward.dev/suspended-state``
   record (exact replica count, previous ``suspend`` value, Notebook annotation removed; for a
   Kueue-managed Job/JobSet its Kueue Workload gets ``spec.active: true``).
With ``--dry-run`` nothing is sent and the output says what would change.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gpu_steward import clikit
from gpu_steward.workloads.model import KUEUE_WORKLOAD_VERSIONS, SUSPENDABLE_KINDS

# lower-case kind or alias -> (kind, API versions to try, newest first)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {}
for _info in SUSPENDABLE_KINDS:
    for _alias in _info.aliases:
        KINDS[_alias] = (_info.kind, _info.api_versions)
for _alias in ("workload", "workloads"):  # Kueue's Workload: a target one may also name directly
    KINDS[_alias] = ("Workload", KUEUE_WORKLOAD_VERSIONS)


def parse_target(text: str) -> tuple[str, tuple[str, ...], str]:
    """'statefulset/train' -> ('StatefulSet', ('apps/v1',), 'train'); also 'sts/train', 'notebooks.kubeflow.org/nb'."""
    kind_part, sep, name = text.partition("/")
    if not sep or not name or "/" in name:
        raise ValueError(f"expected <kind>/<name>, got {text!r}")
    alias = kind_part.lower().split(".", 1)[0]
    if alias not in KINDS:
        raise ValueError(f"unknown kind {kind_part!r}: GPU Steward has no adapter for it; one of: "
                         f"{', '.join(sorted({k for k, _ in KINDS.values()}))}")
    kind, versions = KINDS[alias]
    return kind, versions, name


def add_resume_command(sub: Any) -> None:
    """Register ``resume`` on the top-level subparsers (cli.py calls this)."""
    p = sub.add_parser("resume", help="resume a workload GPU Steward suspended (restores it exactly)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="KIND/NAME", help="e.g. job/train, statefulset/web, notebook/alice-nb, jobset/x")
    clikit.add_kube_flags(p)
    p.add_argument("--dry-run", action="store_true", help="send nothing; print what would change")
    p.set_defaults(func=run_resume)


def add_snooze_command(sub: Any) -> None:
    """Register ``snooze`` on the top-level subparsers (cli.py calls this)."""
    p = sub.add_parser("snooze", help="leave an idle workload alone for a while (bounded by its IdlePolicy)",
                       description="Sets gpusteward.dev/snooze-until to now + --for on the workload. The operator "
                                   "cuts it to the policy's notice.maxSnooze from when it first sees it.")
    p.add_argument("target", metavar="KIND/NAME", help="e.g. job/train, notebook/alice-nb")
    p.add_argument("--for", dest="span", default="2h", help="how long, e.g. 30m, 2h, 1h30m (default 2h)")
    clikit.add_kube_flags(p)
    p.add_argument("--dry-run", action="store_true", help="send nothing; print what would change")
    p.set_defaults(func=run_snooze)


def _find(args: argparse.Namespace) -> tuple[Any, dict[str, Any]] | int:
    """(Kube, the workload) for ``args.target`` in ``args.namespace``, or the exit code after an error."""
    try:
        kind, versions, name = parse_target(args.target)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.namespace = clikit.namespace_of(args)
    kube = clikit.connect(args)
    obj = find_workload(kube, kind, versions, name, args.namespace)
    return kube, obj


def find_workload(kube: Any, kind: str, versions: tuple[str, ...], name: str, namespace: str) -> dict[str, Any]:
    """The workload, or a ``UserError`` saying it is not there (or that its kind is not served)."""
    served = False
    for api_version in versions:
        try:
            obj = kube.get(api_version, kind, name, namespace)
        except Exception as exc:
            from kubernetes.dynamic.exceptions import ResourceNotFoundError

            if isinstance(exc, ResourceNotFoundError):
                continue
            raise
        served = True
        if obj is not None:
            return obj  # type: ignore[no-any-return]
    if not served:
        raise clikit.UserError(f"this cluster does not serve {kind} ({', '.join(versions)}): its CRD is not installed",
                               "install the project that provides it, or check the kind")
    raise clikit.UserError(f"{kind.lower()}/{name} not found in namespace {namespace}",
                           f"list them with `kubectl get {kind.lower()} -n {namespace}`, or pass -n NAMESPACE")


def run_snooze(args: argparse.Namespace) -> int:
    import datetime as dt

    from gpu_steward.policy.timeparse import format_rfc3339
    from gpu_steward.units import parse_duration
    from gpu_steward.workloads.model import SNOOZE_ANNOTATION, WorkloadRef

    try:
        span = parse_duration(args.span)
    except ValueError as exc:
        print(f"error: --for: {exc}", file=sys.stderr)
        return 2
    if span <= dt.timedelta(0):
        print("error: --for: must be longer than 0s", file=sys.stderr)
        return 2
    found = _find(args)
    if isinstance(found, int):
        return found
    kube, obj = found
    ref = WorkloadRef.of(obj)
    until = format_rfc3339(dt.datetime.now(dt.UTC) + span)
    kube.patch(ref.api_version, ref.kind, ref.name, args.namespace,
               {"metadata": {"annotations": {SNOOZE_ANNOTATION: until}}}, dry_run=args.dry_run)
    prefix = "[dry-run] would set" if args.dry_run else "set"
    print(f"{prefix} {SNOOZE_ANNOTATION}={until} on {ref} (the IdlePolicy's notice.maxSnooze caps it)")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    from gpu_steward.workloads import actions
    from gpu_steward.workloads.model import RESUME_ANNOTATION, WorkloadRef

    found = _find(args)
    if isinstance(found, int):
        return found
    kube, obj = found
    kind, name = obj["kind"], obj["metadata"]["name"]
    ref = WorkloadRef.of(obj)
    prefix = "[dry-run] would " if args.dry_run else ""
    if (obj["metadata"].get("annotations") or {}).get(RESUME_ANNOTATION) != "true":
        kube.patch(ref.api_version, kind, name, args.namespace,
                   {"metadata": {"annotations": {RESUME_ANNOTATION: "true"}}}, dry_run=args.dry_run)
    print(f"{prefix}set {RESUME_ANNOTATION}=true on {ref}")
    result = actions.resume(kube, ref, dry_run=args.dry_run)
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    if not result.changed:
        print(result.message)
        return 0
    print(result.message if not args.dry_run else f"[dry-run] {result.message}")
    return 0
