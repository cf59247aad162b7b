"""Settled cost history in operator-only ConfigMaps of ``platform_namespace`` (docs/budgets.md, "Cost history").

Same conventions as the operator's other records (``budgets.records``, the idle store): ConfigMaps only
the operator may write, labelled ``gpusteward.dev/store``, one data key per entry, every write a merge
patch conditional on the shard's ``resourceVersion`` (a 409 re-reads the shard; the entries wait for the
next pass), shards bounded in size.

- ``gpusteward-cost-<YYYYMMDD>-<nnn>``: the records settled for that UTC day (``policy.history.Record``),
  key ``<pod uid>.<start epoch>``; appended to the last shard of the day until it holds ``shard_bytes``,
  then a new shard. Never rewritten: a repeated settlement has the same key and is skipped.
- ``gpusteward-cost-cursors-<nn>``: one cursor per live pod, sharded by uid. Rewritten when its settled
  point or terms change, and at most every ``seen_flush`` for the last-seen time and the utilization
  ledger (idle GPU-hours, utilization average: the trusted copy, which the pods' annotations only mirror).

The leader keeps aggregates (money counters by namespace/team, per-uid cost per namespace and day for
budgets) and the cursors in memory, built from one LIST at start; the CLI LISTs the days it reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import structlog

from gpu_steward.kube import Kube
from gpu_steward.policy import cost as c
from gpu_steward.policy import history as h

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
STORE_LABEL = "gpusteward.dev/store"
DAY_LABEL = "gpusteward.dev/cost-day"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
RECORDS = "cost-history"
CURSORS = "cost-cursors"
PREFIX = "gpusteward-cost"
SHARD_BYTES = 900_000  # a ConfigMap holds at most 1 MiB
CURSOR_SHARDS = 32


def day_shard_name(day: str, n: int, prefix: str = PREFIX) -> str:
    return f"{prefix}-{day}-{n:03d}"


def cursor_shard_name(uid: str, shards: int = CURSOR_SHARDS, prefix: str = PREFIX) -> str:
    n = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) % shards
    return f"{prefix}-cursors-{n:02d}"


def _ours(prefix: str) -> re.Pattern[str]:
    """The names of the ConfigMaps written under ``prefix``: its day shards and its cursor shards, not another
    operator shard's (``gpusteward-cost-shard-1-…`` also starts with ``gpusteward-cost-``)."""
    return re.compile(rf"{re.escape(prefix)}-(\d{{8}}-\d{{3}}|cursors-\d{{2}})")


def _size(data: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


def decode_records(cms: Iterable[JSON]) -> list[h.Record]:
    out: dict[str, h.Record] = {}
    for cm in cms:
        for text in (cm.get("data") or {}).values():
            rec = h.Record.from_json(text)
            if rec is not None:
                out.setdefault(rec.key, rec)
    return list(out.values())


def decode_cursors(cms: Iterable[JSON]) -> dict[str, h.Cursor]:
    out: dict[str, h.Cursor] = {}
    for cm in cms:
        for text in (cm.get("data") or {}).values():
            cur = h.Cursor.from_json(text)
            if cur is not None:
                out[cur.uid] = cur
    return out


def list_records(kube: Kube, namespace: str, window: tuple[dt.datetime, dt.datetime]) -> list[h.Record]:
    """Every settled record of the days ``window`` touches (one LIST)."""
    days = h.days_between(window[0], window[1])
    if not days:
        return []
    selector = f"{STORE_LABEL}={RECORDS}"
    if len(days) <= 62:
        selector += f",{DAY_LABEL} in ({','.join(days)})"
    wanted = set(days)
    cms = [cm for cm in kube.list("v1", "ConfigMap", namespace, label_selector=selector)
           if ((cm.get("metadata") or {}).get("labels") or {}).get(DAY_LABEL) in wanted]
    return decode_records(cms)


DAYS_PER_LIST = 1


def iter_records(kube: Kube, namespace: str, window: tuple[dt.datetime, dt.datetime],
                 days_per_list: int = DAYS_PER_LIST) -> Iterator[h.Record]:
    """The settled records of the days ``window`` touches, as a stream: one LIST per ``days_per_list`` days
    (default: per day), records decoded shard by shard, each day's in (namespace, pod, start) order. Holds one LIST's
    ConfigMaps and the keys seen, never the whole history (``gpu-steward report``/``export``)."""
    days = h.days_between(window[0], window[1])
    seen: set[str] = set()
    for i in range(0, len(days), days_per_list):
        chunk = days[i:i + days_per_list]
        selector = f"{STORE_LABEL}={RECORDS},{DAY_LABEL} in ({','.join(chunk)})"
        by_day: dict[str, list[JSON]] = defaultdict(list)
        for cm in kube.list("v1", "ConfigMap", namespace, label_selector=selector):
            by_day[((cm.get("metadata") or {}).get("labels") or {}).get(DAY_LABEL, "")].append(cm)
        for day in chunk:
            recs = []
            for cm in sorted(by_day.pop(day, []), key=lambda x: x["metadata"]["name"]):
                data = cm.get("data") or {}
                for key in sorted(data):
                    if key in seen:
                        continue
                    rec = h.Record.from_json(data[key])
                    if rec is not None and rec.key not in seen:
                        seen.add(rec.key)
                        recs.append(rec)
            recs.sort(key=lambda r: (r.terms.get("namespace", ""), r.terms.get("pod", ""), r.start))
            yield from recs


def list_cursors(kube: Kube, namespace: str) -> dict[str, h.Cursor]:
    return decode_cursors(kube.list("v1", "ConfigMap", namespace, label_selector=f"{STORE_LABEL}={CURSORS}"))


@dataclass
class Totals:
    cost: Decimal = Decimal(0)
    gpu_hours: Decimal = Decimal(0)
    idle_gpu_hours: Decimal = Decimal(0)
    idle_cost: Decimal = Decimal(0)

    def add(self, rec: h.Record) -> None:
        self.cost += rec.cost
        self.gpu_hours += rec.gpu_hours
        self.idle_gpu_hours += rec.idle_gpu_hours
        self.idle_cost += rec.idle_cost


@dataclass
class _Shard:
    rv: str | None
    size: int


@dataclass
class CostHistory:
    """The leader's view of the history store (see the module docstring)."""

    kube: Kube
    namespace: str
    dry_run: bool = False
    # Sharded mode (policy.shards): this shard writes ConfigMaps under its own prefix and counts the records
    # and cursors of the namespaces it owns, wherever they were written (a namespace that moved keeps its spend).
    prefix: str = PREFIX
    owns: Callable[[str], bool] | None = None
    shard_bytes: int = SHARD_BYTES
    seen_flush: dt.timedelta = dt.timedelta(minutes=5)
    loaded: bool = False
    published: bool = False  # the cost configuration published this run (budgets.publish)
    keys: set[str] = field(default_factory=set)
    totals: dict[tuple[str, str, str], Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_day: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=lambda: defaultdict(dict))
    cursors: dict[str, h.Cursor] = field(default_factory=dict)
    _persisted: dict[str, h.Cursor] = field(default_factory=dict)
    _day_shards: dict[str, list[tuple[str, _Shard]]] = field(default_factory=lambda: defaultdict(list))
    _cursor_rv: dict[str, str | None] = field(default_factory=dict)

    # ---- reading ---------------------------------------------------------------------------------
    def load(self) -> None:
        ours, owns = _ours(self.prefix), self.owns or (lambda _ns: True)
        cms = self.kube.list("v1", "ConfigMap", self.namespace, label_selector=f"{STORE_LABEL}={RECORDS}")
        for cm in sorted(cms, key=lambda x: x["metadata"]["name"]):
            meta = cm["metadata"]
            if not ours.fullmatch(meta["name"]):
                continue  # another shard's: read, never appended to
            day = (meta.get("labels") or {}).get(DAY_LABEL, "")
            self._day_shards[day].append((meta["name"], _Shard(meta.get("resourceVersion"),
                                                               _size(cm.get("data") or {}))))
        for rec in decode_records(cms):
            if owns(rec.t("namespace")):
                self._count(rec)
        ccms = self.kube.list("v1", "ConfigMap", self.namespace, label_selector=f"{STORE_LABEL}={CURSORS}")
        for cm in ccms:
            if ours.fullmatch(cm["metadata"]["name"]):
                self._cursor_rv[cm["metadata"]["name"]] = cm["metadata"].get("resourceVersion")
        self.cursors = {uid: cur for uid, cur in decode_cursors(ccms).items() if owns(cur.terms.get("namespace", ""))}
        self._persisted = dict(self.cursors)
        self.loaded = True

    def _count(self, rec: h.Record) -> None:
        if rec.key in self.keys:
            return
        self.keys.add(rec.key)
        self.totals[(rec.t("namespace"), rec.t("team"), rec.t("currency"))].add(rec)
        costs = self.by_day[(rec.t("namespace"), rec.day)]
        costs[rec.uid] = costs.get(rec.uid, Decimal(0)) + rec.cost

    def period_costs(self, namespace: str, window: tuple[dt.datetime, dt.datetime]) -> dict[str, Decimal]:
        """Settled cost per pod uid of ``namespace`` in the whole days of ``window``."""
        out: dict[str, Decimal] = {}
        for day in h.days_between(*window):
            for uid, cost in self.by_day.get((namespace, day), {}).items():
                out[uid] = out.get(uid, Decimal(0)) + cost
        return out

    # ---- writing ---------------------------------------------------------------------------------
    def append(self, records: Iterable[h.Record]) -> int:
        """Write the records not written yet; returns how many were written."""
        by_day: dict[str, dict[str, h.Record]] = defaultdict(dict)
        for rec in records:
            if rec.key not in self.keys:
                by_day[rec.day][rec.key] = rec
        written = 0
        for day, recs in sorted(by_day.items()):
            pending = [(k, r, r.to_json()) for k, r in sorted(recs.items())]
            while pending:
                name, shard = self._open_shard(day)
                batch: dict[str, str] = {}
                size = shard.size
                while pending and (size + len(pending[0][0]) + len(pending[0][2]) <= self.shard_bytes or (not batch
                                   and shard.size == 0)):
                    k, _, text = pending.pop(0)
                    batch[k] = text
                    size += len(k) + len(text)
                if not batch:  # the open shard is full: start the next one
                    self._day_shards[day].append((day_shard_name(day, len(self._day_shards[day]), self.prefix),
                                                  _Shard(None, 0)))
                    continue
                if not self._write_day(day, name, shard, batch):
                    return written  # conflict: the rest waits for the next pass (same keys)
                for k in batch:
                    self._count(recs[k])
                written += len(batch)
        return written

    def _open_shard(self, day: str) -> tuple[str, _Shard]:
        if not self._day_shards[day]:
            self._day_shards[day].append((day_shard_name(day, 0, self.prefix), _Shard(None, 0)))
        return self._day_shards[day][-1]

    def _write_day(self, day: str, name: str, shard: _Shard, batch: dict[str, str]) -> bool:
        if self.dry_run:
            shard.size += _size(batch)
            return True
        try:
            if shard.rv is None:
                out = self.kube.create({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": self.namespace,
                                 "labels": {STORE_LABEL: RECORDS, DAY_LABEL: day, MANAGED_BY_LABEL: "gpu-steward"}},
                    "data": batch}, dry_run=False)
            else:
                out = self.kube.patch("v1", "ConfigMap", name, self.namespace,
                                      {"metadata": {"resourceVersion": shard.rv}, "data": batch}, dry_run=False)
        except Exception as exc:  # 409 (someone else wrote) or 409 AlreadyExists: re-read, retry next pass
            log.warning("cost history write deferred", shard=name, error=getattr(exc, "status", type(exc).__name__))
            cm = self.kube.get("v1", "ConfigMap", name, self.namespace)
            if cm is not None:
                shard.rv, shard.size = cm["metadata"].get("resourceVersion"), _size(cm.get("data") or {})
                for text in (cm.get("data") or {}).values():
                    rec = h.Record.from_json(text)
                    if rec is not None:
                        self._count(rec)
            return False
        shard.rv = ((out or {}).get("metadata") or {}).get("resource_version") or \
            ((out or {}).get("metadata") or {}).get("resourceVersion")
        shard.size += _size(batch)
        return True

    def flush_cursors(self, now: dt.datetime) -> int:
        """Persist the cursors that changed (the last-seen time at most every ``seen_flush``)."""
        changes: dict[str, dict[str, str | None]] = defaultdict(dict)
        for uid, cur in self.cursors.items():
            old = self._persisted.get(uid)
            if old is not None and replace(old, seen_until=cur.seen_until, idle_seen=cur.idle_seen,
                                           util_hours=cur.util_hours, util_sum=cur.util_sum) == cur \
                    and cur.seen_until - old.seen_until < self.seen_flush:
                continue
            changes[cursor_shard_name(uid, prefix=self.prefix)][uid] = cur.to_json()
        for uid in self._persisted:
            if uid not in self.cursors:
                changes[cursor_shard_name(uid, prefix=self.prefix)][uid] = None
        written = 0
        for name, data in sorted(changes.items()):
            ok = True if self.dry_run else self._write_cursors(name, data)
            if ok:
                for uid, text in data.items():
                    if text is None:
                        self._persisted.pop(uid, None)
                    else:
                        self._persisted[uid] = self.cursors[uid]
                written += len(data)
        return written

    def _write_cursors(self, name: str, data: dict[str, str | None]) -> bool:
        try:
            if name not in self._cursor_rv and self.kube.get("v1", "ConfigMap", name, self.namespace) is None:
                out = self.kube.create({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": self.namespace,
                                 "labels": {STORE_LABEL: CURSORS, MANAGED_BY_LABEL: "gpu-steward"}},
                    "data": {k: v for k, v in data.items() if v is not None}}, dry_run=False)
            else:
                out = self.kube.patch("v1", "ConfigMap", name, self.namespace, {"data": data}, dry_run=False)
        except Exception as exc:
            log.warning("cost cursors write deferred", shard=name, error=getattr(exc, "status", type(exc).__name__))
            return False
        meta = (out or {}).get("metadata") or {}
        self._cursor_rv[name] = meta.get("resource_version") or meta.get("resourceVersion")
        return True


def open_part(pod: Mapping[str, Any] | None, cursor: h.Cursor | None, terms_now: Mapping[str, str] | None,
              now: dt.datetime) -> h.Record | None:
    """The unsettled part of a pod: from its cursor (or, never settled, from its start on today's terms)
    to its end as seen now (a pod no longer listed: to when it was last seen). Idle GPU-hours come from the
    cursor (the operator's ledger): a pod the cost pass has not seen yet has none counted, whatever its
    annotations say."""
    window = c.pod_window(pod, now) if pod is not None else None
    if cursor is None:
        if pod is None or window is None or terms_now is None:
            return None
        cursor = h.Cursor(pod["metadata"].get("uid", ""), window[0], window[1], Decimal(0), Decimal(0),
                          dict(terms_now))
    if cursor.closed:
        return None
    end = window[1] if window is not None else cursor.seen_until
    return cursor.part(max(end, cursor.settled_until))
