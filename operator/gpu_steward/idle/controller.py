"""One evaluation pass over every GPU workload: resolve, measure, decide, act, report.

The pass is the only place where the pure engine (``policy.idle.decide``) meets the cluster. Per
workload it follows the engine's protocol: persist the intent, carry out the action (a notice or an
adapter call), then confirm — so a crash anywhere costs at most one repeated notice, never an action
without notice. Reads per pass: one LIST per workload kind seen, one of namespaces, one of suspended
workloads per kind, and the agents' summaries. Writes happen only when a state changes, so a steady
cluster costs zero writes per pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import structlog

from gpu_steward.api.parse import Valid, parse_idle_policy
from gpu_steward.budgets.costs import price_table
from gpu_steward.cluster_view import ClusterView, ListView
from gpu_steward.idle.delivery import Backoff, deliver, unusable_channels
from gpu_steward.idle.metrics import (
    NOTICE_RESENDS,
    WORKLOAD_FAILURES,
    prune_policies,
    record_blast,
    record_policy,
)
from gpu_steward.idle.rules import rules_from_spec, windows_from_spec
from gpu_steward.idle.shard_report import ShardReports
from gpu_steward.idle.status import policy_conditions, signal_condition, write_status
from gpu_steward.index import GpuPod, Registry
from gpu_steward.kube import Kube
from gpu_steward.notify.messages import NoticeContext, event_for, note_event, slack_message, warning_closed
from gpu_steward.notify.slack import SlackNotifier, SlackThread
from gpu_steward.policy import blast
from gpu_steward.policy import idle as engine
from gpu_steward.policy.cost import GPU_PRODUCT_LABEL, gpu_hour_price
from gpu_steward.policy.idle_model import ActionKind, Decision, IdleRules, IdleState, Phase, WorkloadFacts
from gpu_steward.policy.idle_summary import summarize
from gpu_steward.policy.requests import Published, SuspensionRequest, choose
from gpu_steward.policy.schedule import in_window
from gpu_steward.policy.selection import PolicyCandidate, choose_policy, exempt_by_selectors, policy_applies
from gpu_steward.policy.store_codec import Entry, EntryRef, WarningMessage, adopt_legacy, entry_key
from gpu_steward.policy.usage import GPU_UTIL, Usage, merge_usages, select_signal
from gpu_steward.settings import Settings
from gpu_steward.sources.base import PodRef, UtilizationSource
from gpu_steward.store import IdleStore
from gpu_steward.workloads import actions, adapters
from gpu_steward.workloads.model import (
    EXEMPT_ANNOTATION,
    IDLE_STATE_ANNOTATION,
    RESUME_ANNOTATION,
    SNOOZE_ANNOTATION,
    SUSPENDED_STATE_ANNOTATION,
    Owner,
    WorkloadRef,
    listed_versions,
)
from gpu_steward.workloads.resolve import owner_of, resolve

log = structlog.get_logger(__name__)

SUSPENDED_LABEL = "gpusteward.dev/suspended"  # lets a pass find suspended workloads (they have no pods)

# Kinds an adapter can suspend; suspended ones are listed by label each pass.
SUSPENDABLE = listed_versions()


# (workload, target, suspendable, owner refs, the workload's key)
Resolved = tuple[WorkloadRef | None, WorkloadRef | None, bool, tuple[WorkloadRef, ...], tuple[str, str, str, str]]


@dataclass
class Workload:
    ref: WorkloadRef
    target: WorkloadRef | None
    suspendable: bool
    objects: tuple[dict[str, Any], ...]
    pods: list[GpuPod] = field(default_factory=list)


@dataclass
class PassResult:
    workloads: int = 0
    decisions: int = 0
    decisions_by_policy: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    writes: int = 0
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: float = 0.0
    failures: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # per policy
    protected: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    deferred: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # per policy
    breaker_policies: set[tuple[str, str]] = field(default_factory=set)  # held back by the open breaker
    verdict: blast.Verdict | None = None  # the blast-radius gate's, this pass
    # workloads judged on GPUUtil because their GPUs cannot give the policy's idle.signal
    signal_fallbacks: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class Chosen:
    """The policy that governs one workload, as rules for the engine."""

    key: tuple[str, str]
    rules: IdleRules
    windows: Any
    tz: str | None
    exemptions: list[Any]
    not_suspended_because: str | None = None  # notify-only for a reason the owner must hear (data loss)
    request: SuspensionRequest | None = None  # a budget's or lease's request: its notice cycle governs
    signal: str = GPU_UTIL  # the policy's idle.signal


@dataclass
class Stored:
    """What is remembered of the workload, as last read or written this pass (so a pass never writes twice):
    its store entry (the only state trusted), and what the workload itself carries of ours — the mirror
    annotation (for people; never read back) and the ``suspended`` label."""

    key: str
    entry: Entry | None
    mirror: str | None
    label: str | None
    adopted: bool = False  # this pass took the state over from the previous release's annotation


@dataclass
class Planned:
    """One workload's decision, before the blast-radius gate and before anything is carried out."""

    wl: Workload
    obj: dict[str, Any]
    usage: Usage
    chosen: Chosen
    stored: Stored
    prior: IdleState
    decision: Decision

    @property
    def id(self) -> str:
        return "/".join(_key(self.wl.ref))


class IdleController:
    def __init__(self, kube: Kube, settings: Settings, source: UtilizationSource, registry: Registry,
                 slack: SlackNotifier | None = None, clock: Callable[[], dt.datetime] | None = None,
                 requests: Callable[[], list[Published]] | None = None, view: ClusterView | None = None) -> None:
        self.kube, self.settings, self.source, self.registry = kube, settings, source, registry
        # Where workloads, owners, namespaces and nodes are read: the operator's watch-fed projections (no
        # API read in a steady pass); without one, LISTs and GETs each pass (tools, tests).
        self.view = view
        # Budgets' and leases' suspension requests (budgets.requests.load), read once per pass: they are
        # carried out here, through the same protocol as idle suspensions (design invariant 2).
        self.requests = requests or (lambda: [])
        self.slack = slack
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        # Pod uid -> its resolution (Resolved): one shared tuple per workload (_shared).
        self._resolved: dict[str, Resolved] = {}
        self._shared: dict[Resolved, Resolved] = {}
        self._owner_objects: dict[WorkloadRef, dict[str, Any]] = {}  # this pass's owner lookups
        self._chosen: dict[tuple[str, str, bool, str | None], Chosen] = {}  # this pass's, per policy
        self._prices = price_table(settings)
        self._nodes: dict[str, dict[str, Any]] = {}  # this pass's nodes: prices and GPU models
        # Price per node name, kept while the node's projection is the same object (node labels rarely change).
        self._node_prices: dict[str | None, tuple[dict[str, Any] | None, Decimal]] = {}
        # Two idle readings further apart than this are not one idle stretch (engine rule); it bounds
        # how stale the persisted coverage may get, hence how often an idle workload is written.
        self.max_gap = dt.timedelta(seconds=max(120.0, 4 * settings.evaluation_interval_seconds))
        # Everything the engine remembers per workload (dry-run clocks included) lives in the operator's
        # store, never read back from the workload (docs/store.md).
        self.shard = settings.shard()
        # In sharded mode each shard's leader keeps its own store, record and share of the caps (policy.shards).
        self.store = IdleStore(kube, settings.platform_namespace, prefix=self.shard.name(settings.store_prefix),
                               shards=settings.store_shards,
                               resync=dt.timedelta(seconds=settings.store_resync_seconds),
                               adoption_window=dt.timedelta(seconds=settings.legacy_adoption_seconds))
        # Sharded mode: this shard's part of each policy status, and the other shards' parts for the
        # policies whose status this shard writes (those of its namespaces).
        self.reports = ShardReports(kube, settings) if self.shard.sharded else None
        # Notices that reached no one are retried on later passes, spaced out.
        self._backoff = Backoff(dt.timedelta(seconds=max(30.0, settings.evaluation_interval_seconds)))

    # ---- the pass ------------------------------------------------------------------------------
    async def run_pass(self, now: dt.datetime | None = None) -> PassResult:
        started = self.clock()
        now = now or started
        result = PassResult()
        await asyncio.to_thread(self.store.load, now)  # StoreUnavailable: no pass without remembered state
        policies = await asyncio.to_thread(self._valid_policies, now)
        pods = [p for p in self.registry.pods() if p.running]
        view = self.view or ListView(self.kube)
        self._owner_objects, self._chosen = {}, {}
        workloads = await asyncio.to_thread(self._group, pods, view)
        objects, namespaces = await asyncio.to_thread(self._read_cluster, workloads, view)
        published = await asyncio.to_thread(self.requests)
        refs = [PodRef(p.namespace, p.name, p.uid, p.node) for p in pods]
        signals = frozenset(spec.idle.signal or GPU_UTIL for _, spec in policies.values()) - {GPU_UTIL}
        # Sources answer GPUUtil always; the other signals only when a policy asks for them.
        usages = await (self.source.fetch(refs, now, signals=signals) if signals else self.source.fetch(refs, now))
        decisions: dict[tuple[str, str], list[Decision]] = defaultdict(list)
        planned: list[Planned] = []
        for wl in workloads.values():
            obj = objects.get(_key(wl.ref))
            if obj is None:
                continue
            pkey = ("", "")
            try:  # one workload's error (a 404, 409, 422 ...) never stops the others' evaluation
                chosen = self._policy_for(wl, obj, policies, namespaces)
                request = choose(p.request for p in published if p.covers(*_key(wl.ref)))
                if request is not None:
                    chosen = self._for_request(wl, obj, chosen, request)
                elif chosen is None:
                    chosen = self._ungoverned(wl, obj, now)
                if chosen is None:
                    continue
                pkey = chosen.key
                usage = self._usage(wl, usages, chosen, result)
                target = objects.get(_key(wl.target)) if wl.target else obj
                stored = self._stored(wl, obj, now)
                facts = self._facts(wl, obj, target, chosen, stored, now)
                planned.append(self._decide(wl, obj, facts, usage, chosen, stored, now))
            except Exception as exc:
                self._failed(wl, pkey, exc, result)
        # The blast-radius gate sees every suspension this pass would start before any is carried out.
        verdict = await asyncio.to_thread(self._gate, planned, now, result)
        for p in planned if verdict.deferred else ():
            why = verdict.deferred.get(p.id)
            if why is not None:
                p.decision = blast.withhold(p.decision, p.prior, why.value)
        # 1. Every intent is in the store before anything is carried out (one write per shard touched).
        for p in planned:
            self._stage(p, p.decision.state, now)
        unwritten = await asyncio.to_thread(self.store.flush)
        # One thread hop for them all, not one per workload (at thousands of workloads the hops cost more
        # than a steady pass's work); each workload's errors stay its own.
        await asyncio.to_thread(self._carry_out_all, planned, verdict, unwritten, decisions, now, result)
        result.workloads = len(workloads)
        seen = {_key(w.ref) for w in workloads.values()}
        self._forget(workloads, now)
        # 3. The idle clocks' progress and forgotten entries go to the store (confirmations went at once).
        await asyncio.to_thread(self.store.flush)
        self._backoff.forget(lambda k: isinstance(k, tuple) and k[0] in seen)
        await asyncio.to_thread(self._write_policy_status, policies, decisions, now, result)
        result.seconds = (self.clock() - started).total_seconds()
        return result

    def _carry_out_all(self, planned: list[Planned], verdict: blast.Verdict, unwritten: dict[str, str],
                       decisions: dict[tuple[str, str], list[Decision]], now: dt.datetime,
                       result: PassResult) -> None:
        for p in planned:
            pkey = p.chosen.key
            why = verdict.deferred.get(p.id) if verdict.deferred else None
            if why is not None:
                result.deferred[pkey] += 1
                if why is blast.Deferral.BREAKER:
                    result.breaker_policies.add(pkey)
            if p.stored.key in unwritten:  # its intent is not remembered: it must not act on it
                self._failed(p.wl, pkey, RuntimeError(f"state not stored: {unwritten[p.stored.key]}"), result)
                continue
            try:  # one workload's error (a 404, 409, 422 ...) never stops the others' actions
                decision = self._carry_out(p, now, result, verdict.paused)
            except Exception as exc:
                self._failed(p.wl, pkey, exc, result)
                continue
            decisions[pkey].append(decision)
            if p.chosen.not_suspended_because:
                result.protected[pkey].append(f"{p.wl.ref}: {p.chosen.not_suspended_because}")
            result.decisions += 1
            result.decisions_by_policy[pkey] += 1

    def _usage(self, wl: Workload, usages: dict[str, Usage], chosen: Chosen, result: PassResult) -> Usage:
        """The workload's usage on its policy's signal; GPUUtil (noted in the policy status) when a pod's GPUs
        cannot give that signal — for the whole workload, so one threshold never compares two measures."""
        if not wl.pods:
            return Usage.unknown("no running pods")
        base = [usages.get(p.uid) or _NOT_MEASURED for p in wl.pods]
        picked = [select_signal(u, chosen.signal) for u in base]
        if not any(fell_back for _, fell_back in picked):
            return merge_usages([u for u, _ in picked])
        if any(fell_back and u.status == "ok" for u, fell_back in picked):
            result.signal_fallbacks[chosen.key].append(str(wl.ref))
        return merge_usages(base)

    def _failed(self, wl: Workload, pkey: tuple[str, str], exc: Exception, result: PassResult) -> None:
        log.warning("idle evaluation of one workload failed; the pass goes on", workload=str(wl.ref),
                    policy="/".join(pkey), error=f"{type(exc).__name__}: {exc}", status=getattr(exc, "status", None))
        result.failures[pkey] += 1
        WORKLOAD_FAILURES.labels(*pkey).inc()

    # ---- blast radius --------------------------------------------------------------------------
    def _limits(self) -> blast.Limits:
        s, share = self.settings, self.shard.share
        # The cluster-wide caps are split among the shards (their sum is the configured figure); the
        # per-namespace cap and the breaker's share of watched workloads hold per shard as they are.
        return blast.Limits(per_pass=share(s.suspensions_per_pass), per_hour=share(s.suspensions_per_hour),
                            per_namespace_per_hour=s.suspensions_per_namespace_per_hour,
                            breaker_percent=s.breaker_percent, breaker_minimum=s.breaker_minimum)

    def _controls(self) -> blast.Controls:
        """The runtime switches: a ConfigMap in the operator's namespace (users cannot write there), read
        each pass. One that cannot be read pauses actions: a switch we cannot see might be on."""
        try:
            cm = self._configmap(self.settings.controls_configmap, fresh=False)
        except Exception as exc:
            log.warning("controls ConfigMap unreadable: actions paused this pass", error=f"{type(exc).__name__}")
            return blast.Controls(paused=True, reason="the controls ConfigMap could not be read")
        controls = blast.controls_from_data((cm or {}).get("data"), paused_by_setting=self.settings.actions_paused)
        for problem in controls.problems:
            log.warning("controls ConfigMap", problem=problem)
        return controls

    def _gate(self, planned: list[Planned], now: dt.datetime, result: PassResult) -> blast.Verdict:
        """Which of the suspensions this pass would start may go ahead (``policy.blast``); the hourly record
        is written before any of them is carried out."""
        limits, controls = self._limits(), self._controls()
        candidates = [blast.Candidate(p.id, p.wl.ref.namespace or "", p.decision.state.warn_suspend_at or now)
                      for p in planned if blast.new_suspension(p.decision, now)]
        watched = sum(1 for p in planned if p.wl.pods)  # governed workloads that hold GPUs now
        name, ns = self.shard.name(self.settings.blast_record_configmap), self.settings.platform_namespace
        try:
            # Read fresh before a suspension may start (its record is written conditionally on this read);
            # otherwise the watched copy does (no request in a steady pass).
            cm = self._configmap(name, fresh=bool(candidates))
            unreadable = None
        except Exception as exc:
            cm, unreadable = None, f"{type(exc).__name__}: {exc}"
        record, problem = blast.record_from_data((cm or {}).get("data"), limits, now)
        verdict = blast.gate(candidates, watched, record, limits, controls, now)
        if problem:
            log.warning("blast-radius record", problem=problem)
        if unreadable:
            log.warning("blast-radius record unreadable: no suspension this pass", error=unreadable)
            verdict = blast.refuse(verdict, blast.Deferral.RECORD_UNAVAILABLE)
        elif verdict.record != record or (problem and cm is not None):
            try:
                self._write_record(name, ns, cm, verdict.record)
                result.writes += 1
            except Exception as exc:
                log.warning("blast-radius record not written: no suspension this pass",
                            error=f"{type(exc).__name__}: {exc}")
                verdict = blast.refuse(verdict, blast.Deferral.RECORD_UNAVAILABLE)
        if verdict.breaker.open != (record.breaker_open_since is not None) or (verdict.breaker.open and candidates
                                                                                and not verdict.breaker.acknowledged):
            (log.warning if verdict.breaker.open else log.info)(verdict.breaker.message())
        if verdict.deferred:
            log.info("suspensions deferred by the blast-radius limits", allowed=len(verdict.allowed),
                     deferred={k.value: v for k, v in verdict.by_reason.items()},
                     suspended_last_hour=verdict.suspended_last_hour)
        result.verdict = verdict
        record_blast(verdict)
        return verdict

    def _configmap(self, name: str, *, fresh: bool) -> dict[str, Any] | None:
        """A ConfigMap of the platform namespace: from the watch's copy where one serves the namespace's list
        (``Kube.served_lists``, the operator), else (or ``fresh``) by GET."""
        ns = self.settings.platform_namespace
        if fresh or ("v1", "ConfigMap", ns) not in getattr(self.kube, "served_lists", {}):
            return self.kube.get("v1", "ConfigMap", name, ns)
        return next((cm for cm in self.kube.list("v1", "ConfigMap", ns) if cm["metadata"]["name"] == name), None)

    def _write_record(self, name: str, ns: str, current: dict[str, Any] | None, record: blast.Record) -> None:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": name, "namespace": ns,
                                             "labels": {"app.kubernetes.io/managed-by": "gpu-steward"}},
                                "data": blast.record_to_data(record)}
        if current is None:
            self.kube.create(body, dry_run=False)
        else:  # conditional on what was read: a stale view fails (409) instead of losing an entry
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.kube.replace(body, dry_run=False)

    # ---- inputs --------------------------------------------------------------------------------
    def _valid_policies(self, now: dt.datetime) -> dict[tuple[str, str], tuple[dict[str, Any], Any]]:
        out = {}
        for body in self.registry.policies():
            meta = body["metadata"]
            parsed = parse_idle_policy(body)
            if isinstance(parsed, Valid):
                out[(meta["namespace"], meta["name"])] = (body, parsed.value)
            elif self.shard.owns(meta["namespace"]):  # the status's one writer (sharded mode)
                write_status(self.kube, body, {}, now, ok=False, reason="Invalid", message=str(parsed))
        return out

    def _group(self, pods: list[GpuPod], view: ClusterView) -> dict[tuple[str, str, str, str], Workload]:
        """Pods → the workloads they belong to. A pod's resolution is cached as references only (owner chains
        do not change), one shared copy per workload; the owners' objects are read from the view each pass
        (their labels and spec may change), once per workload. A resolution that found an owner missing is
        not kept: the watch may not have delivered it yet."""
        groups: dict[tuple[str, str, str, str], Workload] = {}
        for pod in pods:
            cached = self._resolved.get(pod.uid)
            if cached is not None and cached[0] is not None:
                wl = groups.get(cached[4])
                if wl is not None:  # the workload's other pods were seen this pass: nothing to look up
                    wl.pods.append(pod)
                    continue
            owners: tuple[dict[str, Any], ...] | None = None
            if cached is not None:
                owners = self._owners(cached[3], view)
            if cached is None or owners is None:  # not resolved yet, or an owner went: resolve again
                res = resolve(pod.as_object(), view.lookup, view.owned)
                owners = res.objects[1:]
                value = (res.workload, res.target, res.suspendable, tuple(WorkloadRef.of(o) for o in owners),
                         _key(res.workload) if res.workload is not None else ("", "Pod", pod.namespace, pod.name))
                cached = self._shared.setdefault(value, value)  # one copy per workload, not one per pod
                if res.final:  # an owner not found *yet* (the watch has not delivered it): next pass
                    self._resolved[pod.uid] = cached
            ref, target, suspendable, _, key = cached
            if ref is None:  # a bare pod: notify-only, it is its own workload
                key = ("", "Pod", pod.namespace, pod.name)
            wl = groups.get(key)
            if wl is None:
                objs: tuple[dict[str, Any], ...]
                if ref is None:
                    ref, objs = WorkloadRef("v1", "Pod", pod.namespace, pod.name, pod.uid), (pod.as_object(),)
                else:
                    objs = (pod.as_object(), *owners)
                wl = groups[key] = Workload(ref, target, suspendable, objs)
            wl.pods.append(pod)
        if len(self._resolved) > len(pods):  # pods went (stale entries are bounded by the unresolved pods)
            live = {p.uid for p in pods}
            self._resolved = {uid: v for uid, v in self._resolved.items() if uid in live}
            kept = set(self._resolved.values())
            self._shared = {v: v for v in self._shared if v in kept}
        return groups

    def _owners(self, refs: tuple[WorkloadRef, ...], view: ClusterView) -> tuple[dict[str, Any], ...] | None:
        """The current objects of a cached owner chain; None when one is gone (or was replaced)."""
        out = []
        for r in refs:
            obj = self._owner_objects.get(r)
            if obj is None:
                obj = view.lookup(r.api_version, r.kind, r.namespace, r.name)
                if obj is None or (obj.get("metadata") or {}).get("uid") not in (None, r.uid):
                    return None
                self._owner_objects[r] = obj
            out.append(obj)
        return tuple(out)

    def _read_cluster(self, workloads: dict[tuple[str, str, str, str], Workload], view: ClusterView
                      ) -> tuple[dict[tuple[str, str, str, str], dict[str, Any]], dict[str, dict[str, str]]]:
        kinds = {(w.ref.api_version, w.ref.kind) for w in workloads.values()}
        kinds |= {(w.target.api_version, w.target.kind) for w in workloads.values() if w.target}
        # Workloads our store says we suspended (or are suspending, or giving back) are evaluated even
        # without GPU pods or our label (a crash between the adapter's patch and the label, a hand edit).
        holding = {key: e.ref for key, e in self.store.entries().items()
                   if e.state is not None and _holds_suspension(e.state)}
        kinds |= {(r.api_version, r.kind) for r in holding.values() if r.kind != "Pod"}
        adopting = self.store.adoption_open(self.clock())
        objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for api_version, kind in sorted(kinds):
            if kind == "Pod":
                continue
            for obj in view.objects(api_version, kind):
                ref = WorkloadRef.of(obj)
                objects[_key(ref)] = obj
                if _key(ref) in workloads:
                    continue
                entry = holding.get(_store_key(ref))
                if (entry is not None and entry.uid in (None, ref.uid)) or \
                        (adopting and _suspended_by_us_unlabelled(obj)):
                    # Suspended by us but without our label: evaluate it, which writes the label back, so
                    # later passes find it by label. (The annotation counts only while adopting an upgrade.)
                    workloads[_key(ref)] = Workload(ref, ref, True, (obj,))
        for wl in workloads.values():
            if wl.ref.kind == "Pod":
                objects[_key(wl.ref)] = wl.objects[0]
        # Suspended workloads have no GPU pods left, but their state still needs evaluating (resume).
        for api_version, kind in SUSPENDABLE:
            for obj in view.objects(api_version, kind, label_selector=f"{SUSPENDED_LABEL}=true"):
                ref = WorkloadRef.of(obj)
                if not self.shard.owns(ref.namespace):  # another shard's (a view that is not the shard's own)
                    continue
                objects[_key(ref)] = obj
                if _key(ref) not in workloads:
                    workloads[_key(ref)] = Workload(ref, ref, True, (obj,))
        namespaces = view.namespaces()
        self._nodes = view.nodes()
        if len(self._node_prices) > len(self._nodes) + 1:  # nodes went
            self._node_prices = {k: v for k, v in self._node_prices.items() if k in self._nodes}
        return objects, namespaces

    def _policy_for(self, wl: Workload, obj: dict[str, Any], policies: dict[tuple[str, str], Any],
                    namespaces: dict[str, dict[str, str]]) -> Chosen | None:
        ns = wl.ref.namespace or ""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        candidates = []
        for (pns, pname), (body, spec) in policies.items():
            selector = body["spec"].get("selector")
            if policy_applies(selector, ns, namespaces.get(ns), wl.ref.kind, labels, policy_namespace=pns,
                              platform_namespace=self.settings.platform_namespace):
                candidates.append(PolicyCandidate(pns, pname, selector, spec.dry_run))
        chosen = choose_policy(candidates, ns)
        if chosen is None:
            return None
        lose = next(filter(None, (adapters.unsuspendable_reason(o) for o in (obj, *wl.objects))), None)
        # Workloads under one policy share its parsed rules: built once per pass, not once per workload.
        memo = (chosen.namespace, chosen.name, wl.suspendable, lose)
        if memo not in self._chosen:
            body, spec = policies[(chosen.namespace, chosen.name)]
            rules = rules_from_spec(spec, global_dry_run=self.settings.dry_run,
                                    max_sample_age=dt.timedelta(seconds=self.settings.sample_max_age_seconds),
                                    max_gap=self.max_gap)
            rules = replace(rules, policy=f"{chosen.namespace}/{chosen.name}")
            if not wl.suspendable or lose or self._degraded(rules.channels):
                # Bare pods, data that suspension would delete (or a controller that rejects it), a notice
                # channel the operator cannot use: warnings only, and those state no suspension time (so
                # they never count as one).
                rules = replace(rules, action="NotifyOnly")
            windows, tz = windows_from_spec(spec)
            exemptions = body["spec"].get("exemptions", {}).get("selectors") or []
            self._chosen[memo] = Chosen((chosen.namespace, chosen.name), rules, windows, tz, exemptions, lose,
                                        signal=spec.idle.signal or GPU_UTIL)
        return self._chosen[memo]

    def _default_rules(self) -> IdleRules:
        """Rules for a workload no IdlePolicy governs, when a budget or lease asks to suspend it: idle below
        ``cost_idle_util_percent`` (what the budget counts as idle), 10 minutes of startup grace, the
        channels the operator can use."""
        channels = ("Slack", "Event") if self.slack is not None and self.slack.configured else ("Event",)
        return IdleRules(util_threshold_percent=self.settings.cost_idle_util_percent, idle_for=dt.timedelta(0),
                         startup_grace=dt.timedelta(minutes=10), dry_run=self.settings.dry_run, channels=channels,
                         max_sample_age=dt.timedelta(seconds=self.settings.sample_max_age_seconds),
                         max_gap=self.max_gap)

    def _for_request(self, wl: Workload, obj: dict[str, Any], chosen: Chosen | None,
                     request: SuspensionRequest) -> Chosen:
        """A budget's or lease's request governs the workload: the policy's idle rules (or the defaults), but
        the request's notice cycle, and suspension unless the workload cannot be suspended (a bare pod, data
        that suspension would delete, a notice channel the operator cannot use). Only the global dry-run
        applies: budgets and leases have no dry-run of their own, and an IdlePolicy's dry-run is about idle
        suspensions, not about a budget overrun or an expired lease."""
        base = chosen.rules if chosen is not None else self._default_rules()
        lose = next(filter(None, (adapters.unsuspendable_reason(o) for o in (obj, *wl.objects))), None)
        cannot = not wl.suspendable or lose or self._degraded(base.channels)
        rules = replace(base, action="NotifyOnly" if cannot else "Suspend", dry_run=self.settings.dry_run)
        return Chosen((wl.ref.namespace or "", request.source), rules, (), None,
                      chosen.exemptions if chosen is not None else [], lose, request,
                      signal=chosen.signal if chosen is not None else GPU_UTIL)

    def _ungoverned(self, wl: Workload, obj: dict[str, Any], now: dt.datetime) -> Chosen | None:
        """No policy, no request — but a suspension of ours (a request's, since gone: a lease released when
        its pods went) or a notice still owed: keep evaluating it, so resume and the notices work. Known from
        the store only (the annotation is a mirror for people, never trusted)."""
        entry = self._stored(wl, obj, now).entry
        state = entry.state if entry is not None else None
        if state is None or not (_holds_suspension(state) or state.suspended_notice.pending
                                 or state.resumed_notice.pending):
            return None
        source = (state.warn_policy or "").split("@")[0] or "GPU Steward"
        return Chosen((wl.ref.namespace or "", source), self._default_rules(), (), None, [])

    def _degraded(self, channels: Any) -> list[str]:
        """The notice channels a policy names that the operator cannot use: such a policy never suspends."""
        return unusable_channels(channels or ("Slack", "Event"), self.slack)

    def _facts(self, wl: Workload, obj: dict[str, Any], target: dict[str, Any] | None, chosen: Chosen,
               stored: Stored, now: dt.datetime) -> WorkloadFacts:
        windows, tz, exemptions = chosen.windows, chosen.tz, chosen.exemptions
        meta = obj.get("metadata") or {}
        ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        starts = [p.started_at for p in wl.pods if p.started_at]
        suspended = None
        if target is not None and wl.suspendable:
            try:
                suspended = adapters.is_suspended(target)
            except adapters.UnsupportedKind:
                suspended = None
        return WorkloadFacts(
            started_at=max(starts) if starts else None,
            gpus=sum(p.gpus for p in wl.pods) or (stored.entry.state.suspended_gpus
                                                  if stored.entry is not None and stored.entry.state else 0),
            in_window=in_window(windows, tz, now) if windows else True,
            exempt_by_selector=exempt_by_selectors(exemptions, labels),
            exempt_until=ann.get(EXEMPT_ANNOTATION), snooze_until=ann.get(SNOOZE_ANNOTATION),
            resume_requested=str(ann.get(RESUME_ANNOTATION, "")).lower() == "true",
            suspended=suspended, gpu_hour_price=self._price(wl), request=chosen.request,
        )

    def _node(self, wl: Workload) -> dict[str, Any] | None:
        name = next((p.node for p in wl.pods if p.node), None)
        return self._nodes.get(name) if name else None

    def _price(self, wl: Workload) -> Decimal:
        """The same price the cost ledger uses: node override, else the GPU model's, else the default (per
        node, once per pass: the workloads of one node share it)."""
        name = next((p.node for p in wl.pods if p.node), None)
        node = self._nodes.get(name) if name else None
        known = self._node_prices.get(name)
        if known is None or known[0] is not node:  # the watch replaces a node's projection when it changes
            known = self._node_prices[name] = (node, gpu_hour_price(self._prices, node))
        return known[1]

    def _gpu_model(self, wl: Workload) -> str | None:
        node = self._node(wl) or {}
        return ((node.get("metadata") or {}).get("labels") or {}).get(GPU_PRODUCT_LABEL)

    # ---- one workload ------------------------------------------------------------------------
    def _stored(self, wl: Workload, obj: dict[str, Any], now: dt.datetime) -> Stored:
        """The workload's entry in the store; an entry of another workload of that name (deleted and
        created again: another uid) is none. Without an entry, and only while the store adopts an
        upgrade, the previous release's annotation is taken over once (opt-out bounds clamped to now)."""
        meta = obj.get("metadata") or {}
        mirror = (meta.get("annotations") or {}).get(IDLE_STATE_ANNOTATION)
        key = _store_key(wl.ref)
        entry = self.store.get(key)
        uid = meta.get("uid")
        if entry is not None and not _same(entry.ref, wl.ref, uid):
            entry = None
        stored = Stored(key, entry, mirror, (meta.get("labels") or {}).get(SUSPENDED_LABEL))
        if entry is None and mirror is not None and self.store.adoption_open(now):
            state, problem = engine.state_from_annotation(mirror)
            created = self.store.meta.created_at if self.store.meta else now
            if problem:
                log.warning("previous release's idle state unreadable, starting over", workload=str(wl.ref),
                            problem=problem)
            elif _marked_after(state, created):
                log.warning("idle-state annotation written after the upgrade: not adopted", workload=str(wl.ref))
            else:
                ref = EntryRef(wl.ref.api_version, wl.ref.kind, wl.ref.namespace or "", wl.ref.name, uid)
                stored.entry = Entry(ref, state=adopt_legacy(state, now), adopted=True)
                stored.adopted = True
                log.info("idle state adopted from the previous release's annotation", workload=str(wl.ref))
        return stored

    def _decide(self, wl: Workload, obj: dict[str, Any], facts: WorkloadFacts, usage: Usage, chosen: Chosen,
                stored: Stored, now: dt.datetime) -> Planned:
        rules, entry = chosen.rules, stored.entry
        state = IdleState()
        if entry is not None:  # dry-run keeps its own clocks, starting from the enforcing state
            state = (entry.dry if rules.dry_run else None) or entry.state or IdleState()
        return Planned(wl, obj, usage, chosen, stored, state, engine.decide(state, usage, facts, rules, now))

    def _stage(self, p: Planned, state: IdleState, now: dt.datetime) -> None:
        """Put the state into the store's next write when it holds news (``engine.needs_persist``): every
        change that matters at once, the idle clock's progress at most every half ``max_gap`` (and then
        one write per shard per pass, not per workload). A workload with nothing to remember gets no entry."""
        stored, dry = p.stored, p.chosen.rules.dry_run
        entry = stored.entry
        old = None if entry is None else (entry.dry if dry else entry.state)
        if not stored.adopted and not engine.needs_persist(old, state, self.max_gap / 2):
            return
        ref = EntryRef(p.wl.ref.api_version, p.wl.ref.kind, p.wl.ref.namespace or "", p.wl.ref.name,
                       (p.obj.get("metadata") or {}).get("uid") or p.wl.ref.uid)
        warning = entry.warning if entry else None
        if dry:
            new = Entry(ref, state=entry.state if entry else None, dry=state, written_at=now,
                        adopted=bool(entry and entry.adopted), warning=warning)
        else:  # an enforcing state ends any dry-run clocks kept beside it
            new = Entry(ref, state=state, dry=None, written_at=now, adopted=bool(entry and entry.adopted),
                        warning=warning)
        self.store.put(stored.key, new)
        stored.entry, stored.adopted = new, False

    def _forget(self, workloads: dict[tuple[str, str, str, str], Workload], now: dt.datetime) -> None:
        """Entries of workloads no pass sees any more (deleted, finished, scaled away) are dropped once they
        have not been written for ``store_retention_seconds``; an entry holding a suspension is kept."""
        seen = {_store_key(w.ref) for w in workloads.values()}
        keep = dt.timedelta(seconds=self.settings.store_retention_seconds)
        for key, entry in self.store.entries().items():
            if key in seen or (entry.state is not None and _holds_suspension(entry.state)):
                continue
            if entry.written_at is None or now - entry.written_at > keep:
                self.store.remove(key)

    def _carry_out(self, p: Planned, now: dt.datetime, result: PassResult, paused: bool) -> Decision:
        """Persist the intent, act, confirm. ``paused``: the global switch is on, no suspension is carried
        out (not even the repeat of one already intended); notices and resumes go on."""
        wl, obj, usage, chosen, stored, decision = p.wl, p.obj, p.usage, p.chosen, p.stored, p.decision
        rules, key = chosen.rules, _key(wl.ref)
        dry = rules.dry_run  # dry-run: nothing is written to the workload
        state = decision.state  # 1. its intent is in the store already (run_pass)
        if not dry:  # the label (and the mirror) before any adapter call
            self._sync_workload(wl, stored, state, decision.clear_resume_request, result)
        owner: Owner | None = None  # who to notify: looked up only when there is a notice
        for note in decision.notes:
            spec = note_event(note)
            self.kube.event(obj, spec.reason, spec.message, type_=spec.type, now=now)
        for action in decision.actions:
            if paused and action.kind is ActionKind.SUSPEND and not action.would_only and not dry:
                log.info("actions paused: suspension not carried out", workload=str(wl.ref))
                continue
            result.actions[("would-" if action.would_only else "") + action.kind.value] += 1
            if action.would_only or (dry and not action.is_notice):
                log.info("dry-run", action=action.kind.value, workload=str(wl.ref), reason=action.reason)
                continue
            retry_key = (key, action.kind.value, action.episode)
            if action.is_notice and not self._backoff.due(retry_key, now):
                continue  # it reached no one last time: wait for the backoff before trying again
            if action.resend:
                NOTICE_RESENDS.labels("failed" if self._backoff.known(retry_key) else "unknown").inc()
            owner = owner or owner_of(wl.objects, self.settings)
            if self._perform(wl, obj, action, decision, usage, chosen, owner, now, retry_key, stored):  # 2. act
                state = engine.confirm(state, action, self.clock())  # 3. confirm
                self._stage(p, state, now)
                # Stored at once, not at the pass's end: a kill between a delivered notice and its record
                # makes the next leader send it again, so that window is kept to one write.
                unwritten = self.store.flush()
                if unwritten:
                    log.warning("confirmation not stored; the next pass may repeat it", workload=str(wl.ref),
                                action=action.kind.value, error=next(iter(unwritten.values())))
                if not dry and not action.is_notice:
                    self._sync_workload(wl, stored, state, False, result)
        if not dry:
            self._sync_workload(wl, stored, state, False, result)
        return replace(decision, state=state)

    def _sync_workload(self, wl: Workload, stored: Stored, state: IdleState, clear_resume: bool,
                       result: PassResult) -> None:
        """What the workload carries of ours follows the stored state: the ``suspended`` label, set with the
        suspension's *intent* before the adapter's patch (so a crash after that patch leaves a workload the
        next pass finds by label) and removed when the state no longer holds a suspension of ours; and the
        ``gpusteward.dev/idle-state`` mirror, for ``kubectl describe`` only — written when what it shows
        changed (not for the idle clock's progress), put back when someone edits it, never read back."""
        label = "true" if _holds_suspension(state) else None
        mirror = _mirror(state) if stored.entry is not None and stored.entry.state is not None else None
        annotations: dict[str, Any] = {}
        if mirror is not None and mirror != stored.mirror:
            annotations[IDLE_STATE_ANNOTATION] = mirror
        if clear_resume:
            annotations[RESUME_ANNOTATION] = None
        patch: dict[str, Any] = {"metadata": {}}
        if annotations:
            patch["metadata"]["annotations"] = annotations
        if label != stored.label:
            patch["metadata"]["labels"] = {SUSPENDED_LABEL: label}
        if not patch["metadata"]:
            return
        self.kube.patch(wl.ref.api_version, wl.ref.kind, wl.ref.name, wl.ref.namespace, patch, dry_run=False)
        stored.label = label
        if mirror is not None:
            stored.mirror = mirror
        result.writes += 1

    def _perform(self, wl: Workload, obj: dict[str, Any], action: engine.Action, decision: Decision, usage: Usage,
                 chosen: Chosen, owner: Owner, now: dt.datetime, retry_key: tuple[Any, ...],
                 stored: Stored | None = None) -> bool:
        rules = chosen.rules
        if action.kind is ActionKind.SUSPEND:
            res = actions.suspend(self.kube, wl.ref, now, dry_run=False)
            if not res.ok:
                self.kube.event(obj, "SuspendFailed", res.error or "suspend failed", type_="Warning", now=now)
            return res.ok
        if action.kind is ActionKind.RESUME:
            res = actions.resume(self.kube, wl.ref, dry_run=False)
            if not res.ok:
                self.kube.event(obj, "ResumeFailed", res.error or "resume failed", type_="Warning", now=now)
            return res.ok
        ctx = self._notice(wl, action, decision, usage, chosen, owner, now)
        spec = event_for(ctx)

        def event() -> tuple[bool, str]:
            return self.kube.event(obj, spec.reason, spec.message, type_=spec.type, now=now), "Event not recorded"

        def slack() -> tuple[bool, str]:
            assert self.slack is not None
            return self._slack(ctx, action, owner, stored)

        senders = {"Event": event}
        if self.slack is not None and self.slack.configured:
            senders["Slack"] = slack
        # Counted only when it reached the owner on a channel the policy names (design invariant 2).
        outcome = deliver(rules.channels, senders)
        if outcome.failed:
            log.warning("notice not delivered on every channel", workload=str(wl.ref), stage=action.stage,
                        delivered=list(outcome.delivered), errors=list(outcome.errors))
        if outcome.ok:
            self._backoff.succeeded(retry_key)
        else:
            retry_at = self._backoff.failed(retry_key, now)
            log.warning("notice reached no one; it does not count and is retried", workload=str(wl.ref),
                        stage=action.stage, retry_at=retry_at.isoformat())
        return outcome.ok

    def _slack(self, ctx: NoticeContext, action: engine.Action, owner: Owner,
               stored: Stored | None) -> tuple[bool, str]:
        """Send one notice to Slack. With a bot token: the owner @mentioned; the warning's place kept in the
        store entry (written with the confirmation that follows); the suspension and resumed notices of the
        same episode posted in the warning's thread, and the warning's buttons removed once suspended."""
        assert self.slack is not None
        entry = stored.entry if stored is not None else None
        warning = entry.warning if entry is not None else None
        thread = None
        if (warning is not None and warning.episode == action.episode and not action.would_only
                and action.kind in (ActionKind.NOTIFY_SUSPENDED, ActionKind.NOTIFY_RESUMED)):
            thread = SlackThread(warning.channel, warning.ts)
        ctx = replace(ctx, owner_mention=self.slack.mention(owner.email))
        sent = self.slack.send(slack_message(ctx), owner_email=owner.email, thread=thread)
        if sent.ok and action.kind is ActionKind.WARN and not action.would_only and stored is not None \
                and entry is not None and sent.channel and sent.ts:
            stored.entry = replace(entry, warning=WarningMessage(action.episode, sent.channel, sent.ts))
        if sent.ok and thread is not None and action.kind is ActionKind.NOTIFY_SUSPENDED:
            self.slack.update(thread, warning_closed(ctx))  # best effort: the notice itself was delivered
        return sent.ok, "; ".join(sent.errors)

    def _notice(self, wl: Workload, action: engine.Action, decision: Decision, usage: Usage, chosen: Chosen,
                owner: Owner, now: dt.datetime) -> NoticeContext:
        rules, pkey = chosen.rules, chosen.key
        price = decision.gpu_hour_price or self._prices.default
        gpus = decision.gpus or sum(p.gpus for p in wl.pods)
        starts = [p.started_at for p in wl.pods if p.started_at]
        hours = Decimal(str((now - min(starts)).total_seconds() / 3600)) if starts else Decimal(0)
        stage = {ActionKind.WARN: "warning", ActionKind.NOTIFY_SUSPENDED: "suspended",
                 ActionKind.NOTIFY_RESUMED: "resumed"}[action.kind]
        return NoticeContext(
            stage=stage, kind=wl.ref.kind, name=wl.ref.name, namespace=wl.ref.namespace or "", now=now,  # type: ignore[arg-type]
            dry_run=action.would_only, owner=owner.name, idle_since=action.idle_since or decision.state.idle_since,
            gpus=gpus, gpu_model=self._gpu_model(wl), util_percent=usage.util_mean,
            threshold_percent=rules.util_threshold_percent,
            cost_so_far=(price * gpus * hours).quantize(Decimal("0.01")),
            cost_per_hour=price * gpus, currency=self.settings.currency,
            suspend_at=action.suspend_at if rules.action == "Suspend" else None, max_snooze=rules.max_snooze,
            policy=f"{pkey[0]}/{pkey[1]}", reason=action.reason, api_version=wl.ref.api_version,
            buttons=self.settings.slack_signing_secret is not None and self.settings.slack_bot_token is not None,
            uid=wl.ref.uid, owner_email=owner.email,
            not_suspended_because=chosen.not_suspended_because,
            cause=_cause(chosen.request, decision.state.warn_policy),
            snoozable=chosen.request.snoozable if chosen.request is not None else True,
        )

    # ---- policy status -------------------------------------------------------------------------
    def _write_policy_status(self, policies: dict[tuple[str, str], Any],
                             decisions: dict[tuple[str, str], list[Decision]], now: dt.datetime,
                             result: PassResult) -> None:
        prune_policies(set(policies))
        for key, (body, spec) in policies.items():
            summary = summarize(decisions.get(key, []), now, self._prices.default)
            record_policy(key[0], key[1], summary)  # the metrics: running GPU-hour and money figures
            # The status's GPU-hour and money figures move in steps of ten evaluation intervals (5 min at the
            # default 30 s): a figure that grew every pass would rewrite every status every pass while anything
            # is suspended (or would be, in dry-run).
            step = 10 * self.settings.evaluation_interval_seconds
            stepped = dt.datetime.fromtimestamp(now.timestamp() // step * step, dt.UTC)
            fields = summarize(decisions.get(key, []), stepped, self._prices.default).as_status(
                spec.dry_run or self.settings.dry_run)
            fields["currency"] = self.settings.currency
            fields["failed"] = result.failures.get(key, 0)
            protected = sorted(result.protected.get(key, []))
            fields["protected"] = len(protected)
            fields["deferred"] = result.deferred.get(key, 0)
            verdict = result.verdict
            breaker = verdict.breaker.message() if verdict and key in result.breaker_policies else None
            paused = (verdict.paused_reason or "actions paused") if verdict and verdict.paused else None
            extra = policy_conditions(self._degraded(spec.notice.channels), protected, breaker=breaker,
                                      paused=paused)
            if (spec.idle.signal or GPU_UTIL) != GPU_UTIL:
                fallbacks = sorted(result.signal_fallbacks.get(key, []))
                fields["signalFallbacks"] = len(fallbacks)
                extra.append(signal_condition(spec.idle.signal, fallbacks))
            if self.reports is not None:  # sharded: this shard's part, merged by the status's one writer
                self.reports.part(key, body, fields, extra)
                continue
            try:
                if write_status(self.kube, body, fields, now, ok=True, reason="Evaluated",
                                message=f"{summary.watched} GPU workloads watched", extra=extra):
                    result.writes += 1
            except Exception as exc:  # one policy's status never stops the others'
                log.warning("idle policy status not written", policy="/".join(key), error=str(exc))
        if self.reports is not None:
            result.writes += self.reports.publish(set(policies))  # drops deleted policies' parts first
            result.writes += self.reports.merge_reported(now)


def _key(ref: WorkloadRef) -> tuple[str, str, str, str]:
    return (ref.api_version.split("/")[0] if "/" in ref.api_version else "", ref.kind, ref.namespace or "", ref.name)


def _cause(request: SuspensionRequest | None, warn_policy: str | None) -> str | None:
    """Why a budget or lease wants the workload suspended, for its notices; None for idle policies. After the
    request is gone (a lease released once its pods went) the warning's owner still names it."""
    if request is not None:
        return request.reason
    if warn_policy and "@" in warn_policy:  # a request's id; a policy's is "namespace/name"
        return f"suspension requested by {warn_policy.split('@')[0]}"
    return None


_NOT_MEASURED = Usage.unknown("not measured")


@functools.lru_cache(maxsize=1 << 16)  # every pass asks for every workload's key, twice
def _store_key(ref: WorkloadRef | EntryRef) -> str:
    group = ref.api_version.split("/")[0] if "/" in ref.api_version else ""
    return entry_key(group, ref.kind, ref.namespace or "", ref.name)


def _same(entry: EntryRef, ref: WorkloadRef, uid: str | None) -> bool:
    """The entry belongs to this workload: same group, kind, namespace and name, and (when both are known)
    the same uid — a workload deleted and created again under its name starts afresh."""
    return (_store_key(entry) == _store_key(ref) and entry.group == ref.group and entry.kind == ref.kind
            and entry.namespace == (ref.namespace or "") and entry.name == ref.name
            and (entry.uid is None or uid is None or entry.uid == uid))


def _mirror(state: IdleState) -> str:
    """The mirror annotation's text: the state without the idle clock's progress (written only when
    something a person cares about changed)."""
    return engine.state_to_annotation(replace(state, idle_covered_to=None))


def _marked_after(state: IdleState, at: dt.datetime) -> bool:
    """Whether an annotation claims a notice or an action after ``at`` (when this release's store was
    created): the previous release had stopped by then, so that annotation is not its."""
    marks = (state.warn, state.suspend, state.suspended_notice, state.resume, state.resumed_notice)
    return any(t is not None and t > at for m in marks for t in (m.intended_at, m.done_at))


def _holds_suspension(state: IdleState) -> bool:
    """The state says we suspended the workload, or are about to, or are giving it back: label it."""
    return state.phase is Phase.SUSPENDED or state.suspend.intended_at is not None or state.resume.pending


def _suspended_by_us_unlabelled(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(SUSPENDED_LABEL) == "true":
        return False
    ann = meta.get("annotations") or {}
    if SUSPENDED_STATE_ANNOTATION in ann and IDLE_STATE_ANNOTATION in ann:
        return True
    state, _ = engine.state_from_annotation(ann.get(IDLE_STATE_ANNOTATION)) if IDLE_STATE_ANNOTATION in ann \
        else (None, None)
    return state is not None and _holds_suspension(state)

