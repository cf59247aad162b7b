"""The cost ledger's edge: price every GPU pod from its node, write rate-limited cost annotations.

Pod timestamps give GPU-hours and cost at any moment. Idle GPU-hours and the utilization average are
what the operator observed: ``CostLedger`` keeps them per pod in memory, seeded from the pod's cursor in
the cost history (operator-only ConfigMaps, ``budgets.history``) and saved back into it each pass, so they
survive restarts (a restart loses at most the samples of one cursor flush, never cost). The cost
annotations on the pods are a display mirror written from the ledger and never read back: anyone with
``edit`` in a namespace can rewrite them (docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import structlog

from gpu_steward.budgets.history import CostHistory, open_part
from gpu_steward.budgets.metrics import record_costs
from gpu_steward.budgets.writes import WriteBudget, priority
from gpu_steward.kube import Kube
from gpu_steward.policy import cost as c
from gpu_steward.policy import history as h
from gpu_steward.settings import Settings

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
# (namespace, pod name) -> the pod's current GPU utilization in percent, or None when unknown.
UtilizationLookup = Callable[[str, str], "float | None"]


def price_table(settings: Settings, opencost: Mapping[str, Decimal] | None = None) -> c.PriceTable:
    return c.PriceTable(
        settings.currency, settings.default_gpu_hour_price, dict(settings.gpu_hour_prices),
        settings.price_override_label, by_pool=dict(settings.pool_gpu_hour_prices),
        spot_by_model=dict(settings.spot_gpu_hour_prices), mig_profile_prices=dict(settings.mig_profile_prices),
        mig_slices=dict(settings.mig_slices_per_gpu), default_replicas=settings.gpu_replicas_default,
        opencost=dict(opencost or {}))


OPENCOST_QUERY = "avg by (node) (node_gpu_hourly_cost)"


def opencost_prices(settings: Settings, source: Any = None) -> dict[str, Decimal]:
    """OpenCost's ``node_gpu_hourly_cost`` per node (price of one GPU-hour), from ``prometheus_url``.

    Empty when OpenCost is not enabled or Prometheus does not answer: the default price applies then
    (logged), never an error that stops cost from being counted."""
    if not settings.opencost_enabled or not settings.prometheus_url:
        return {}
    from gpu_steward.sources.prometheus import PrometheusSource

    try:
        src = source or PrometheusSource.from_settings(settings)
        rows = src._conn().custom_query(OPENCOST_QUERY)
    except Exception as exc:  # any failure leaves OpenCost out of this pass
        log.warning("OpenCost prices not read", error=str(exc))
        return {}
    out: dict[str, Decimal] = {}
    for item in rows:
        node = (item.get("metric") or {}).get("node")
        price = c._parse_price(str((item.get("value") or [None, None])[1]))
        if node and price is not None:
            out[str(node)] = price
    return out


def gpu_pods(pods: Iterable[JSON]) -> list[JSON]:
    return [p for p in pods if c.pod_gpus(p) > 0]


def holds_gpus(pod: Mapping[str, Any]) -> bool:
    """Counted by the apiserver's quota: not finished and not being deleted."""
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    return status.get("phase") not in ("Succeeded", "Failed") and not meta.get("deletionTimestamp")


class Prices:
    """Price per GPU-hour of each pod, from its node (nodes listed once per pass)."""

    def __init__(self, table: c.PriceTable, nodes: Iterable[JSON]) -> None:
        self.table = table
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self._node_prices: dict[str | None, c.NodePrice] = {}
        # A pass prices each pod three times (annotations, history terms, rates): once, by uid (a Prices
        # lives for one pass, over one snapshot of the pods).
        self._pod_prices: dict[str, c.PodPrice] = {}

    @classmethod
    def load(cls, kube: Kube, settings: Settings) -> Prices:
        return cls(price_table(settings, opencost_prices(settings)), kube.list("v1", "Node"))

    def node_of(self, pod: Mapping[str, Any]) -> JSON | None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        return self.nodes.get(node_name) if node_name else None

    def node_price(self, pod: Mapping[str, Any]) -> c.NodePrice:
        node_name = (pod.get("spec") or {}).get("nodeName")
        key = node_name if node_name in self.nodes else None
        if key not in self._node_prices:
            self._node_prices[key] = c.node_price(self.table, self.nodes.get(key) if key else None)
        return self._node_prices[key]

    def pod_price(self, pod: Mapping[str, Any]) -> c.PodPrice:
        uid = (pod.get("metadata") or {}).get("uid")
        found = self._pod_prices.get(uid) if uid else None
        if found is None:
            found = c.pod_price(self.table, pod, self.node_of(pod), self.node_price(pod))
            if uid:
                self._pod_prices[uid] = found
        return found

    def for_pod(self, pod: Mapping[str, Any]) -> Decimal:
        """Price of one whole GPU-hour on the pod's node."""
        return self.node_price(pod).price


@dataclass
class PassResult:
    pods: int = 0
    written: int = 0
    skipped_rate_limited: int = 0
    unchanged: int = 0


@dataclass
class CostLedger:
    """The operator's utilization ledger of each pod (idle GPU-hours, utilization average), by pod uid.

    In memory; ``seed`` takes a pod's recorded ledger (its cost-history cursor) the first time the pod is
    seen, ``settle_pass`` saves the totals back into the cursor. Never taken from the pod's annotations."""

    idle_below_percent: float = 5.0
    totals: dict[str, c.UtilLedger] = field(default_factory=dict)
    last_sample: dict[str, dt.datetime] = field(default_factory=dict)

    def seed(self, uid: str, recorded: c.UtilLedger) -> None:
        """The ledger as last recorded by the operator (a restart, a new leader): kept if already known."""
        self.totals.setdefault(uid, recorded)

    def observe(self, pod: Mapping[str, Any], util_percent: float | None, now: dt.datetime,
                units: Decimal | None = None) -> None:
        """``units``: the pod's GPU-equivalents (``PodPrice.units``); its device count without."""
        uid = pod["metadata"]["uid"]
        last = self.last_sample.get(uid)
        self.last_sample[uid] = now
        if util_percent is None or last is None or not c.is_running(pod):
            return  # no data is not idle; the first sample only starts the clock
        seconds = (now - last).total_seconds()
        self.totals[uid] = self.totals.get(uid, c.UtilLedger()).observe(
            units if units is not None else c.pod_gpus(pod), seconds, util_percent, self.idle_below_percent)

    def ledger_for(self, pod: Mapping[str, Any]) -> c.UtilLedger:
        return self.totals.get(pod["metadata"]["uid"], c.UtilLedger())

    def forget_except(self, uids: set[str]) -> None:
        for uid in set(self.last_sample) | set(self.totals):
            if uid not in uids:
                self.last_sample.pop(uid, None)
                self.totals.pop(uid, None)


def desired_annotations(pod: Mapping[str, Any], price: Decimal | c.PodPrice, ledger: c.UtilLedger,
                        now: dt.datetime) -> dict[str, str]:
    if isinstance(price, c.PodPrice):
        return c.pod_cost(pod, price.node.price, now, ledger, price=price).annotations()
    return c.pod_cost(pod, price, now, ledger).annotations()


def pod_terms(pod: Mapping[str, Any], prices: Prices, settings: Settings) -> dict[str, str]:
    return h.terms_of(pod, prices.pod_price(pod), settings.currency, settings.owner_keys, settings.team_keys)


def _gone(kube: Kube, cursor: h.Cursor) -> bool:
    """A pod is gone when the API says so (not merely missing from a list that may be incomplete)."""
    ns, name = cursor.terms.get("namespace"), cursor.terms.get("pod")
    if not name:
        return True
    try:
        pod = kube.get("v1", "Pod", name, ns)
    except Exception:
        return False
    return pod is None or (pod.get("metadata") or {}).get("uid") != cursor.uid


def settle_pass(kube: Kube, settings: Settings, history: CostHistory, pods: Iterable[JSON], prices: Prices,
                ledger: CostLedger, now: dt.datetime, idle: Mapping[str, Decimal] | None = None) -> int:
    """Settle what is due into the cost history (policy.history): finished days, finished pods, price
    changes, and pods that disappeared. Returns the records written."""
    if not history.loaded:
        history.load()
    if not history.published:
        from gpu_steward.budgets.publish import publish

        try:
            publish(kube, settings, prices.table)
            history.published = True
        except Exception as exc:  # reports need it, cost does not: try again next pass
            log.warning("cost configuration not published", error=getattr(exc, "status", type(exc).__name__))
    records: list[h.Record] = []
    live: set[str] = set()
    for pod in pods:
        uid = (pod.get("metadata") or {}).get("uid")
        if not uid or c.pod_gpus(pod) <= 0:
            continue
        live.add(uid)
        window = c.pod_window(pod, now)
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        util = ledger.ledger_for(pod)  # the operator's ledger (never the pod's annotations)
        idle_total = (idle or {}).get(uid)
        if idle_total is None:
            idle_total = util.idle_gpu_hours
        recs, cur = h.settle(history.cursors.get(uid), uid, window, finished, pod_terms(pod, prices, settings),
                             idle_total, now)
        records += recs
        if cur is not None:  # the ledger's trusted copy, read back by seed() and by reports
            history.cursors[uid] = replace(cur, util_hours=h.q(util.util_observed_gpu_hours),
                                           util_sum=h.q(util.util_weighted_sum))
    for uid, cur in list(history.cursors.items()):
        if uid not in live and _gone(kube, cur):
            records += h.settle_gone(cur)
            del history.cursors[uid]
    written = history.append(records)
    history.flush_cursors(now)
    return written


def write_budget(settings: Settings) -> WriteBudget:
    """The cluster-wide cost-annotation write budget (keep one across passes)."""
    rate = settings.shard().share_rate(settings.cost_annotation_writes_per_second)  # the shards share the rate
    return WriteBudget(rate, burst=max(1.0, rate * settings.evaluation_interval_seconds))


def reconcile_pod_costs(
    kube: Kube, settings: Settings, now: dt.datetime, ledger: CostLedger,
    utilization: UtilizationLookup | None = None, pods: Iterable[JSON] | None = None, prices: Prices | None = None,
    history: CostHistory | None = None, budget: WriteBudget | None = None,
    namespaces: set[str] | None = None,
) -> PassResult:
    """One pass over all GPU pods: sample utilization, write cost annotations where due, within ``budget``
    (``budgets.writes``). ``pods`` may be a lazy view (``index.PodBodies``): it is iterated a few times, and
    only the pods chosen for a write are built again. ``namespaces``: those that exist (else listed)."""
    if pods is None:
        pods = list_gpu_pods(kube, settings)
    prices = prices or Prices.load(kube, settings)
    minimum = dt.timedelta(seconds=settings.cost_annotation_min_interval_seconds)
    refresh = dt.timedelta(seconds=settings.cost_annotation_refresh_seconds)
    budget = budget or write_budget(settings)
    if history is not None and not history.loaded:
        history.load()
    result = PassResult()
    seen: set[str] = set()
    idle_by_uid: dict[str, Decimal] = {}
    due: list[tuple[int, str, str]] = []  # (priority, last write, uid): small, even when every pod is due
    for pod in pods:
        meta = pod["metadata"]
        uid = meta.get("uid")
        if not uid or c.pod_gpus(pod) <= 0:
            continue
        seen.add(uid)
        result.pods += 1
        util = utilization(meta.get("namespace", ""), meta["name"]) if utilization else None
        price = prices.pod_price(pod)
        recorded = history.cursors.get(uid) if history is not None else None
        if recorded is not None:
            ledger.seed(uid, recorded.util)
        ledger.observe(pod, util, now, price.units)
        util_ledger = ledger.ledger_for(pod)
        idle_by_uid[uid] = util_ledger.idle_gpu_hours
        desired = desired_annotations(pod, price, util_ledger, now)
        current = meta.get("annotations") or {}
        if all(current.get(k) == v for k, v in desired.items()):
            result.unchanged += 1
            continue
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        rank = priority(current, desired, finished, now, minimum, refresh)
        if rank is None:
            result.skipped_rate_limited += 1
            continue
        due.append((rank, current.get(c.ANN_COST_UPDATED_AT) or "", uid))
    allowed = budget.take_all(now)
    chosen = {uid for _, _, uid in heapq.nsmallest(allowed, due)}
    result.skipped_rate_limited += len(due) - len(chosen)
    for pod in _pods_of(pods, chosen):
        meta = pod["metadata"]
        desired = desired_annotations(pod, prices.pod_price(pod), ledger.ledger_for(pod), now)
        # The "as of" time: every value above is what it was at this instant (docs/budgets.md).
        body = {"metadata": {"annotations": {**desired, c.ANN_COST_UPDATED_AT: c.format_time(now)}}}
        try:
            kube.patch("v1", "Pod", meta["name"], meta.get("namespace"), body, dry_run=settings.dry_run)
        except Exception as exc:  # a vanished pod or a conflict: try again next pass
            log.info("cost annotation not written", pod=meta["name"], namespace=meta.get("namespace"),
                     error=getattr(exc, "status", type(exc).__name__))
            continue
        finally:
            budget.spend(1)
        result.written += 1
    if history is not None:
        settle_pass(kube, settings, history, pods, prices, ledger, now, idle_by_uid)
        record_costs(history_counters(history, pods, prices, settings, now), rates(pods, prices, settings),
                     namespaces if namespaces is not None else existing_namespaces(kube))
    ledger.forget_except(seen)
    return result


def _pods_of(pods: Iterable[JSON], uids: set[str]) -> Iterable[JSON]:
    """The pods with these uids: looked up where the view can (``PodBodies.get``), else by one scan."""
    if not uids:
        return []
    get = getattr(pods, "get", None)
    if get is not None:
        return [p for p in (get(uid) for uid in sorted(uids)) if p is not None]
    return [p for p in pods if (p.get("metadata") or {}).get("uid") in uids]


def existing_namespaces(kube: Kube) -> set[str] | None:
    """The namespaces that exist (None when they cannot be listed: no series is dropped then)."""
    try:
        return {n["metadata"]["name"] for n in kube.list("v1", "Namespace")}
    except Exception:
        return None


def history_counters(history: CostHistory, pods: Iterable[JSON], prices: Prices, settings: Settings,
                     now: dt.datetime) -> dict[tuple[str, str, str], tuple[Decimal, Decimal, Decimal, Decimal]]:
    """Money, GPU-hours and idle GPU-hours ever, by (namespace, team, currency): settled history plus the
    open parts of the pods not settled yet. Monotonic: a pod's open part moves into the history in the
    same pass it disappears."""
    out: dict[tuple[str, str, str], tuple[Decimal, Decimal, Decimal, Decimal]] = {
        k: (t.cost, t.gpu_hours, t.idle_gpu_hours, t.idle_cost) for k, t in history.totals.items()}
    get = getattr(pods, "get", None)  # a lazy view builds only the pods asked for
    if get is None:
        by_uid = {p["metadata"]["uid"]: p for p in pods if (p.get("metadata") or {}).get("uid")}
        get = by_uid.get
    for uid, cur in history.cursors.items():
        part = open_part(get(uid), cur, None, now)
        if part is None:
            continue
        key = (part.t("namespace"), part.t("team"), part.t("currency"))
        cost, hours, idle, idle_cost = out.get(key, (Decimal(0), Decimal(0), Decimal(0), Decimal(0)))
        out[key] = (cost + part.cost, hours + part.gpu_hours, idle + part.idle_gpu_hours, idle_cost + part.idle_cost)
    return out


def rates(pods: Iterable[JSON], prices: Prices,
          settings: Settings) -> dict[tuple[str, str, str], tuple[Decimal, Decimal]]:
    """Current hourly cost and GPU-equivalents held of the running GPU pods, by (namespace, team, currency)."""
    out: dict[tuple[str, str, str], tuple[Decimal, Decimal]] = {}
    for pod in pods:
        if not c.is_running(pod) or c.pod_gpus(pod) <= 0:
            continue
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        team = next((str(labels[k]) for k in settings.team_keys if labels.get(k)), "")
        key = (meta.get("namespace", ""), team, settings.currency)
        pp = prices.pod_price(pod)
        rate, units = out.get(key, (Decimal(0), Decimal(0)))
        out[key] = (rate + pp.rate, units + pp.units)
    return out


def list_gpu_pods(kube: Kube, settings: Settings, namespace: str | None = None) -> list[JSON]:
    if namespace is not None:
        return gpu_pods(kube.list("v1", "Pod", namespace))
    if settings.namespaces:
        return [p for ns in settings.namespaces for p in gpu_pods(kube.list("v1", "Pod", ns))]
    return gpu_pods(kube.list("v1", "Pod"))
