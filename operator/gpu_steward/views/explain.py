"""``gpu-steward explain KIND/NAME``: one workload's story as GPU Steward sees it.

Everything comes from what the operator wrote down (``views.records``: its idle state, what the adapter
changed, its Events), the cost ledger on the pods, and the policies, leases and budgets as the API
server has them. Which policy governs is recomputed with the operator's own rule
(``policy.selection.choose_policy``) and checked against the policy the operator recorded for its warning.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from decimal import Decimal
from typing import Any

from gpu_steward import clikit
from gpu_steward.api.common import API_VERSION
from gpu_steward.policy.selection import PolicyCandidate, choose_policy, policy_applies, specificity
from gpu_steward.views import gather, records
from gpu_steward.workloads.model import EXEMPT_ANNOTATION, SNOOZE_ANNOTATION, WorkloadRef

_CRITERIA = ("namespace match", "workload-selector requirements", "kinds list", "enforcing beats dry-run",
             "shorter idle.for", "namespace/name order")


def _iso(t: dt.datetime | None) -> str | None:
    """As the operator's record writes times (so explain and the record agree to the character)."""
    if t is None:
        return None
    from gpu_steward.policy.timeparse import format_rfc3339

    return format_rfc3339(t) if t.microsecond == 0 else t.isoformat()


def _rel(t: dt.datetime | None, now: dt.datetime) -> str:
    if t is None:
        return "-"
    d = t - now
    return f"{_iso(t)} (in {gather.age(d)})" if d.total_seconds() > 0 else f"{_iso(t)} ({gather.age(-d)} ago)"


def _policies(kube: Any, ns: str, platform_ns: str) -> tuple[list[dict[str, Any]], str | None]:
    """IdlePolicies that could govern ``ns``: all of them, or (without the right to list every namespace)
    those of ``ns`` and the platform namespace, with a note saying the view is partial."""
    try:
        return kube.list_optional(API_VERSION, "IdlePolicy"), None
    except Exception as exc:
        from kubernetes.client.exceptions import ApiException

        if not (isinstance(exc, ApiException) and exc.status == 403):
            raise
    out: list[dict[str, Any]] = []
    for n in dict.fromkeys((ns, platform_ns)):
        try:
            out += kube.list_optional(API_VERSION, "IdlePolicy", n)
        except Exception as exc:
            from kubernetes.client.exceptions import ApiException

            if not (isinstance(exc, ApiException) and exc.status == 403):
                raise
    return out, ("you may not list IdlePolicies in every namespace: only those of the workload's and the "
                 "platform namespace were considered")


def governing(kube: Any, obj: dict[str, Any], platform_ns: str) -> dict[str, Any]:
    """Which policy governs ``obj`` and why; the others that cover it and what they lost on."""
    from gpu_steward.api.parse import Valid, parse_idle_policy

    ref = WorkloadRef.of(obj)
    ns = ref.namespace or ""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    try:
        ns_labels = ((kube.get("v1", "Namespace", ns) or {}).get("metadata") or {}).get("labels") or {}
    except Exception:
        ns_labels = {}
    bodies, note = _policies(kube, ns, platform_ns)
    candidates, specs, invalid = [], {}, []
    for body in bodies:
        meta = body["metadata"]
        parsed = parse_idle_policy(body)
        if not isinstance(parsed, Valid):
            invalid.append({"policy": f"{meta['namespace']}/{meta['name']}", "why": str(parsed)})
            continue
        selector = (body.get("spec") or {}).get("selector")
        if policy_applies(selector, ns, ns_labels, ref.kind, labels, policy_namespace=meta["namespace"],
                          platform_namespace=platform_ns):
            cand = PolicyCandidate(meta["namespace"], meta["name"], selector, parsed.value.dry_run)
            candidates.append(cand)
            specs[(cand.namespace, cand.name)] = (body, parsed.value)
    chosen = choose_policy(candidates, ns)
    out: dict[str, Any] = {"governedBy": None, "lost": [], "invalid": invalid}
    if note:
        out["note"] = note
    if chosen is None:
        return out
    body, spec = specs[(chosen.namespace, chosen.name)]
    out["governedBy"] = {
        "policy": f"{chosen.namespace}/{chosen.name}", "why": _why(chosen, ns),
        "dryRun": spec.dry_run, "action": spec.action,
        "signal": spec.idle.signal or "GPUUtil", "gpuUtilPercent": spec.idle.gpu_util_percent,
        "idleFor": _dur(spec.idle.for_), "startupGrace": _dur(spec.idle.startup_grace),
        "noticeBefore": _dur(spec.notice.before), "channels": list(spec.notice.channels),
        "maxSnooze": _dur(spec.notice.max_snooze),
        "maxExemption": _dur(spec.exemptions.max_exemption) if spec.exemptions else None,
        "_spec": spec,
    }
    for cand in candidates:
        if cand is chosen:
            continue
        out["lost"].append({"policy": f"{cand.namespace}/{cand.name}", "lostOn": _lost_on(chosen, cand, ns)})
    return out


def _dur(td: Any) -> str | None:
    if td is None:
        return None
    from gpu_steward.units import format_duration

    return format_duration(td)


def _key(c: PolicyCandidate, ns: str) -> tuple[Any, ...]:
    a, b, k = specificity(c, ns)
    return (-a, -b, -k, c.dry_run, float("inf"), c.namespace + "/" + c.name)


def _why(c: PolicyCandidate, ns: str) -> str:
    a, reqs, kinds = specificity(c, ns)
    where = {2: f"names namespace {ns} (or lives in it)", 1: "matches by namespaceSelector",
             0: "covers every namespace"}[a]
    return f"{where}; {reqs} workload-selector requirement(s); {'a kinds list' if kinds else 'any kind'}; " \
           f"{'dry-run' if c.dry_run else 'enforcing'}"


def _lost_on(winner: PolicyCandidate, loser: PolicyCandidate, ns: str) -> str:
    for name, w, lo in zip(_CRITERIA, _key(winner, ns), _key(loser, ns), strict=True):
        if w != lo:
            return name
    return "tie"


def _lease(kube: Any, obj: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    from gpu_steward.policy.cost import LEASE_LABEL
    from gpu_steward.policy.selection import selector_matches

    ref = WorkloadRef.of(obj)
    labelled = [((o.get("metadata") or {}).get("labels") or {}) for o in (obj, *pods)]
    for lease in kube.list_optional(API_VERSION, "ExperimentLease", ref.namespace):
        name = lease["metadata"]["name"]
        selector = (lease.get("spec") or {}).get("selector")
        status = lease.get("status") or {}
        listed = any(w.get("name") == ref.name and w.get("kind") == ref.kind for w in status.get("workloads") or [])
        matches = any(selector_matches(selector, lab) if selector else lab.get(LEASE_LABEL) == name
                      for lab in labelled)
        if listed or matches:
            return {"name": name, "phase": status.get("phase"), "expiresAt": status.get("expiresAt"),
                    "gpus": (lease.get("spec") or {}).get("gpus"), "spend": status.get("spend"),
                    "maxSpend": (lease.get("spec") or {}).get("maxSpend"),
                    "onExpiry": (lease.get("spec") or {}).get("onExpiry", "Suspend")}
    return None


def _budget(kube: Any, ns: str) -> dict[str, Any] | None:
    for b in kube.list_optional(API_VERSION, "GPUBudget", ns):
        spec, status = b.get("spec") or {}, b.get("status") or {}
        spend = spec.get("spend") or {}
        return {"name": b["metadata"]["name"], "gpuQuota": spec.get("gpuQuota"),
                "gpusInUse": status.get("gpusInUse"), "effectiveQuota": status.get("effectiveQuota"),
                "spend": status.get("spend"), "limit": spend.get("limit"), "period": spend.get("period"),
                "forecast": status.get("forecast"), "currency": status.get("currency") or spend.get("currency"),
                "onExceeded": spec.get("onExceeded", "Notify"),
                "announcedThresholds": status.get("announcedThresholds") or []}
    return None


def _bounded(raw: str | None, seen: Any, cap: str | None, max_td: Any) -> dict[str, Any] | None:
    if raw is None and seen is None:
        return None
    out: dict[str, Any] = {"annotation": raw}
    if seen is not None:
        out["firstSeen"] = _iso(seen.seen_at)
        if max_td is not None:
            out["bound"] = _iso(seen.seen_at + max_td)
            out["boundBy"] = cap
    return out


def explain(kube: Any, obj: dict[str, Any], now: dt.datetime, platform_ns: str) -> dict[str, Any]:
    from gpu_steward.settings import Settings

    settings = Settings()
    ref = WorkloadRef.of(obj)
    meta = obj.get("metadata") or {}
    ann = meta.get("annotations") or {}
    rec = records.idle_state(kube, obj)
    st = rec.state
    pods, chain = gather.pods_of(kube, obj)
    gov = governing(kube, obj, platform_ns)
    spec = gov["governedBy"].pop("_spec") if gov["governedBy"] else None
    nodes = gather.node_index(kube)
    wl = gather.GpuWorkload(ref, obj, pods, chain, True, "", rec)
    events = records.events_about(kube, obj)
    rate = gather.hourly_rate(kube, pods, nodes)
    so_far = wl.cost_so_far()
    util_pods = []
    for p in pods:
        pm = p.get("metadata") or {}
        pa = pm.get("annotations") or {}
        util_pods.append({"pod": pm.get("name"), "node": (p.get("spec") or {}).get("nodeName"),
                          "gpus": gather.c.pod_gpus(p), "phase": (p.get("status") or {}).get("phase"),
                          "utilAvgPercent": pa.get(gather.c.ANN_UTIL_AVG),
                          "idleGpuHours": pa.get(gather.c.ANN_IDLE_GPU_HOURS),
                          "gpuHours": pa.get(gather.c.ANN_GPU_HOURS), "asOf": pa.get(gather.c.ANN_COST_UPDATED_AT)})
    warnings = [e for e in events if e.get("reason") in ("IdleWarning", "DryRunIdleWarning")]
    out: dict[str, Any] = {
        "workload": {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name, "namespace": ref.namespace,
                     "uid": ref.uid, "owner": gather.owner(chain)},
        "state": wl.state(),
        "record": None if st is None else {
            "phase": st.phase.value, "episode": st.episode,
            "idleSince": _iso(st.idle_since), "idleCoveredTo": _iso(st.idle_covered_to),
            "warningIntended": _iso(st.warn.intended_at), "warningDelivered": _iso(st.warn.done_at),
            "warningStatedSuspendAt": _iso(st.warn_suspend_at), "warningPolicy": st.warn_policy,
            "suspendedAt": _iso(st.suspended_at), "suspendedGpus": st.suspended_gpus or None,
            "suspendedNoticeDelivered": _iso(st.suspended_notice.done_at),
            "resumedAt": _iso(st.resumed_at), "wouldSuspendAt": _iso(st.would_suspend_at),
            "reclaimedGpuHours": st.reclaimed_gpu_hours or None,
        },
        "recordProblem": rec.problem,
        "suspendedState": rec.suspended_state,
        "policy": gov,
        "utilization": {
            "signal": gov["governedBy"]["signal"] if gov["governedBy"] else "GPUUtil",
            "thresholdPercent": gov["governedBy"]["gpuUtilPercent"] if gov["governedBy"] else None,
            "source": "the operator's cost ledger on each pod (gpusteward.dev/gpu-util-avg, over the pod's life); "
                      "the idle clock comes from the agents' /v1/summary (or Prometheus) as the operator read it",
            "pods": util_pods,
        },
        "notices": [{"time": records.event_time(e), "reason": e.get("reason"), "type": e.get("type"),
                     "channel": "Event", "delivered": True, "count": e.get("count"),
                     "message": e.get("message")} for e in events],
        "snooze": _bounded(ann.get(SNOOZE_ANNOTATION), st.snooze if st else None, "notice.maxSnooze",
                           spec.notice.max_snooze if spec else None),
        "exemption": _bounded(ann.get(EXEMPT_ANNOTATION), st.exemption if st else None, "exemptions.maxExemption",
                              (spec.exemptions.max_exemption if spec and spec.exemptions else None)),
        "lease": _lease(kube, obj, pods),
        "budget": _budget(kube, ref.namespace or ""),
        "cost": {"soFar": str(so_far.quantize(Decimal("0.01"))) if so_far is not None else None,
                 "perHour": str(rate.quantize(Decimal("0.01"))), "currency": settings.currency,
                 "source": "pods' gpusteward.dev/cost and hourly-rate (the operator's ledger)"},
    }
    # The warning as delivered: the record says when it reached the owner (on at least one named channel);
    # each Event channel delivery is an Event; Slack deliveries are in the operator's log, not recorded here.
    if st is not None and st.warn.done_at is not None:
        channels = gov["governedBy"]["channels"] if gov["governedBy"] else []
        out["warning"] = {"deliveredAt": _iso(st.warn.done_at), "statedSuspendAt": _iso(st.warn_suspend_at),
                          "policy": st.warn_policy, "channels": channels,
                          "eventRecorded": bool(warnings),
                          "slack": "named by the policy; a delivery is counted in the record above (the operator "
                                   "logs each send)" if "Slack" in channels else None}
        if st.warn_policy and gov["governedBy"] and \
                st.warn_policy.split("@")[0] != gov["governedBy"]["policy"]:
            out["warning"]["note"] = (f"the warning came from {st.warn_policy}; "
                                      f"{gov['governedBy']['policy']} governs now and gives its own warning")
    elif st is not None and st.warn.intended_at is not None:
        out["warning"] = {"intendedAt": _iso(st.warn.intended_at), "deliveredAt": None,
                          "note": "not delivered yet: it does not count, and is retried"}
    out["next"] = _next(out, st, spec, now)
    return out


def _next(out: dict[str, Any], st: Any, spec: Any, now: dt.datetime) -> str:
    state = out["state"]
    gov = out["policy"]["governedBy"]
    if state == "suspended":
        w = out["workload"]
        return f"suspended; resume with: gpu-steward resume {w['kind'].lower()}/{w['name']} -n {w['namespace']}"
    if gov is None and st is None:
        return "no IdlePolicy governs it: it will not be suspended for idleness"
    if state == "warned" and st is not None and st.warn_suspend_at is not None:
        if gov is not None and gov["dryRun"]:
            return f"dry-run: it would be suspended at {_iso(st.warn_suspend_at)}; nothing is touched"
        return f"suspension due at {_rel(st.warn_suspend_at, now)} unless it becomes busy, is snoozed or exempted"
    if state == "warned":
        return "warned without a suspension time (notify-only): it will not be suspended on this warning"
    if state == "idle" and st is not None and st.idle_since is not None and spec is not None:
        warn_at = st.idle_since + spec.idle.for_
        return f"idle; the owner is warned at {_rel(warn_at, now)} at the earliest, suspended " \
               f"{_dur(spec.notice.before)} after the warning is delivered" + \
               (" (dry-run: nothing is touched)" if spec.dry_run else "")
    if state == "unknown":
        return "no trustworthy utilization data: never treated as idle"
    return "busy: nothing is due"


def render_text(e: dict[str, Any], now: dt.datetime) -> str:
    w = e["workload"]
    lines = [f"{w['kind']}/{w['name']} in namespace {w['namespace']}   (owner: {w['owner'] or 'unknown'})",
             f"State:        {e['state']}   next: {e['next']}"]
    rec = e["record"]
    if rec:
        lines.append(f"Record:       phase {rec['phase']}, episode {rec['episode']}"
                     + (f", idle since {rec['idleSince']}" if rec["idleSince"] else "")
                     + (f", suspended at {rec['suspendedAt']}" if rec["suspendedAt"] else ""))
    else:
        lines.append("Record:       none (the operator never saw it idle: busy, or no data yet)")
    if e.get("recordProblem"):
        lines.append(f"              record unreadable: {e['recordProblem']}")
    pol = e["policy"]
    g = pol["governedBy"]
    if g:
        lines.append(f"Policy:       {g['policy']}  ({'dry-run' if g['dryRun'] else 'enforcing'}, {g['action']})")
        lines.append(f"  why:        {g['why']}")
        lines.append(f"  rules:      idle below {g['gpuUtilPercent']}% {g['signal']} for {g['idleFor']} "
                     f"(grace {g['startupGrace']}); notice {g['noticeBefore']} on {', '.join(g['channels'])}; "
                     f"snooze at most {g['maxSnooze']}")
    else:
        lines.append("Policy:       none governs it")
    for lost in pol["lost"]:
        lines.append(f"  lost:       {lost['policy']} (on {lost['lostOn']})")
    for bad in pol["invalid"]:
        lines.append(f"  invalid:    {bad['policy']}: {bad['why']}")
    if pol.get("note"):
        lines.append(f"  note:       {pol['note']}")
    u = e["utilization"]
    lines.append(f"Utilization:  signal {u['signal']}" + (f", threshold {u['thresholdPercent']}%"
                                                          if u["thresholdPercent"] is not None else ""))
    for p in u["pods"]:
        lines.append(f"  pod {p['pod']}  node {p['node'] or '-'}  {p['gpus']} GPU(s)  "
                     f"avg {p['utilAvgPercent'] or '-'}%  idle GPU-h {p['idleGpuHours'] or '-'}  "
                     f"as of {p['asOf'] or '-'}")
    if not u["pods"]:
        lines.append("  no GPU pods now")
    if e.get("warning"):
        wr = e["warning"]
        if wr.get("deliveredAt"):
            lines.append(f"Warning:      delivered {wr['deliveredAt']} by {wr['policy']}; stated suspension "
                         f"{wr['statedSuspendAt'] or 'none (notify-only)'}; channels {', '.join(wr['channels']) or '-'}"
                         f"; Event {'recorded' if wr['eventRecorded'] else 'not found'}")
        else:
            lines.append(f"Warning:      intended {wr['intendedAt']}, not delivered yet")
        if wr.get("note"):
            lines.append(f"  note:       {wr['note']}")
    for label, key in (("Snooze", "snooze"), ("Exemption", "exemption")):
        s = e[key]
        if s:
            lines.append(f"{label + ':':<14}{s['annotation'] or '-'}" + (
                f"  (first seen {s['firstSeen']}, bounded at {s.get('bound') or '-'} by {s.get('boundBy')})"
                if s.get("firstSeen") else ""))
    lease = e["lease"]
    lines.append("Lease:        " + (f"{lease['name']} ({lease['phase'] or '-'}, expires {lease['expiresAt'] or '-'}, "
                                     f"on expiry {lease['onExpiry']})" if lease else "none"))
    b = e["budget"]
    lines.append("Budget:       " + (f"{b['name']}: spend {b['spend'] or '-'} of {b['limit'] or '-'} "
                                     f"{b['currency'] or ''}"
                                     f" ({b['period'] or '-'}), forecast {b['forecast'] or '-'}, GPUs "
                                     f"{b['gpusInUse'] if b['gpusInUse'] is not None else '-'}/"
                                     f"{b['effectiveQuota'] if b['effectiveQuota'] is not None else b['gpuQuota']}, "
                                     f"on exceeded {b['onExceeded']}" if b else "none in this namespace"))
    cst = e["cost"]
    cur = cst["currency"]
    lines.append(f"Cost:         {cst['soFar'] or '-'} {cur} so far, {cst['perHour']} {cur}/h now")
    lines.append("Timeline (Events from gpu-steward):")
    for n in e["notices"]:
        lines.append(f"  {n['time']}  {n['reason']:<22} {(n['message'] or '')[:160]}")
    if not e["notices"]:
        lines.append("  none")
    return "\n".join(lines) + "\n"


def run_explain(args: argparse.Namespace, *, now: dt.datetime | None = None, kube: Any = None) -> int:
    from gpu_steward.settings import Settings
    from gpu_steward.workloads.cli import find_workload, parse_target

    try:
        kind, versions, name = parse_target(args.target)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return clikit.EXIT_USAGE
    ns = clikit.namespace_of(args)
    kube = kube or clikit.connect(args)
    obj = find_workload(kube, kind, versions, name, ns)
    now = now or dt.datetime.now(dt.UTC)
    data = explain(kube, obj, now, args.platform_namespace or Settings().platform_namespace)
    if args.output in ("json", "yaml"):
        sys.stdout.write(clikit.dump(data, args.output))
    else:
        sys.stdout.write(render_text(data, now))
    return 0
