"""Settled cost history: pure settlement of a pod's cost into append-only records. Pure.

A **record** is one pod (workload) for one stretch of one UTC day at one price: start, end, GPU-hours
(GPU-equivalents), idle GPU-hours, cost, list cost and the **terms** it was priced on (price and where
it came from, node, model, namespace, team, lease, owner, the workload's kind and name). Records are
never rewritten; their key (``<uid>.<start epoch>``) makes a repeated settlement idempotent.

A **cursor** per live pod says up to when it is settled and on which terms its open part runs. Each
pass (``settle``):
- a pod first seen opens a cursor at its start, on the terms seen now;
- terms that changed (a new price, a relabelled team) close the open part at ``now`` on the old
  terms: a price change applies from its time forward, never to hours already used;
- every UTC day that ended is settled; a finished pod is settled to its end and its cursor closed;
- a pod that disappeared (deleted, garbage-collected Job) is settled up to when it was last seen,
  on the terms recorded when its cursor opened: a node deleted meanwhile keeps its price.
Idle GPU-hours are the pod's cumulative idle hours not yet settled, prorated over the unsettled time.

Reports, budgets and the money counters all read ``records + open parts`` through ``rows_in``, so
they agree to the cent for any window that records do not straddle (budget periods are whole days).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from gpu_steward.policy import cost as c

PLACES = Decimal("0.000001")
DAY = dt.timedelta(days=1)


@functools.lru_cache(maxsize=8192)
def _time(text: str) -> dt.datetime | None:
    """``c.parse_time`` of a stored timestamp; records share few distinct ones (day ends, pod starts)."""
    return c.parse_time(text)


_ZERO = Decimal(0).quantize(PLACES)


class Terms(Mapping[str, str]):
    """One pod's terms, compact (a cursor per live pod keeps them): the key order shared by every pod with
    the same keys, the values interned (most repeat across pods: prices, models, the currency). About a
    third of a dict's size."""

    __slots__ = ("_index", "_values")
    _indexes: dict[tuple[str, ...], dict[str, int]] = {}  # a few key sets in all

    def __init__(self, items: Mapping[str, str]) -> None:
        keys = tuple(items)
        index = self._indexes.get(keys)
        if index is None:
            index = self._indexes.setdefault(keys, {k: i for i, k in enumerate(keys)})
        self._index = index
        self._values = tuple(sys.intern(str(v)) for v in items.values())

    def __getitem__(self, key: str) -> str:
        return self._values[self._index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Terms({dict(self)!r})"


def _str_terms(raw: Any) -> dict[str, str]:
    """A record's terms as stored: the operator writes strings only (its ConfigMaps are its own)."""
    if type(raw) is not dict:
        raise TypeError("terms are not an object")
    return raw


def q(value: Decimal) -> Decimal:
    # Zero is what most pods' idle and utilization figures are (no data yet): one shared object, not one
    # per pod per figure (a cursor per live pod keeps four of them).
    return _ZERO if not value else value.quantize(PLACES)


def day_of(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y%m%d")


def day_end(ts: dt.datetime) -> dt.datetime:
    start = ts.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + DAY


def days_between(start: dt.datetime, end: dt.datetime) -> list[str]:
    """The UTC days ``[start, end)`` touches."""
    out, t = [], start.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while t < end:
        out.append(day_of(t))
        t += DAY
    return out


def terms_of(pod: Mapping[str, Any], price: c.PodPrice, currency: str, owner_keys: Iterable[str],
             team_keys: Iterable[str]) -> dict[str, str]:
    """What a record of ``pod`` says besides numbers: who, where, and the price it ran at."""
    meta = pod.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}

    def first(keys: Iterable[str]) -> str:
        for source in (labels, annotations):
            for k in keys:
                if source.get(k):
                    return str(source[k])
        return ""

    refs = [r for r in meta.get("ownerReferences") or [] if r.get("controller")] or meta.get("ownerReferences") or []
    kind, workload = (refs[0].get("kind", ""), refs[0].get("name", "")) if refs else ("Pod", meta.get("name", ""))
    if kind == "ReplicaSet" and "-" in workload:  # a Deployment's pods: name the Deployment
        kind, workload = "Deployment", workload.rsplit("-", 1)[0]
    np_ = price.node
    out = {
        "namespace": meta.get("namespace", ""), "pod": meta.get("name", ""), "kind": kind, "workload": workload,
        "owner": first(owner_keys), "team": first(team_keys), "lease": str(labels.get(c.LEASE_LABEL, "")),
        "node": str((pod.get("spec") or {}).get("nodeName") or ""), "model": np_.model or "",
        "pool": np_.pool or "", "region": np_.region or "", "zone": np_.zone or "",
        "resources": price.resources, "devices": str(price.devices), "units": str(price.units),
        "rate": str(price.rate), "listRate": str(price.list_rate), "price": str(np_.price),
        "listPrice": str(np_.list_price), "source": np_.source, "category": np_.category, "currency": currency,
    }
    return out


@dataclass(frozen=True)
class Record:
    uid: str
    start: dt.datetime
    end: dt.datetime
    gpu_hours: Decimal
    idle_gpu_hours: Decimal
    cost: Decimal
    list_cost: Decimal
    terms: Mapping[str, str]

    @functools.cached_property  # a frozen dataclass without slots: cached in the instance's __dict__
    def key(self) -> str:
        return f"{self.uid}.{int(self.start.timestamp())}"

    @property
    def day(self) -> str:
        return day_of(self.start)

    def t(self, name: str) -> str:
        return self.terms.get(name, "")

    @property
    def rate(self) -> Decimal:
        return Decimal(self.t("rate") or "0")

    @property
    def units(self) -> Decimal:
        return Decimal(self.t("units") or "0")

    @property
    def unit_price(self) -> Decimal:
        """Price per GPU-equivalent hour."""
        units = self.units
        return self.rate / units if units > 0 else Decimal(self.t("price") or "0")

    @property
    def idle_cost(self) -> Decimal:
        return self.idle_gpu_hours * self.unit_price

    def to_json(self) -> str:
        return json.dumps({"u": self.uid, "s": c.format_time(self.start), "e": c.format_time(self.end),
                           "h": c.fmt_decimal(self.gpu_hours), "i": c.fmt_decimal(self.idle_gpu_hours),
                           "c": c.fmt_decimal(self.cost), "l": c.fmt_decimal(self.list_cost), "t": dict(self.terms)},
                          sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> Record | None:
        try:
            raw = json.loads(text)
            start, end = _time(raw["s"]), _time(raw["e"])
            if start is None or end is None:
                return None
            return Record(str(raw["u"]), start, end, Decimal(raw["h"]), Decimal(raw["i"]), Decimal(raw["c"]),
                          Decimal(raw.get("l", raw["c"])), _str_terms(raw["t"]))
        except (ValueError, KeyError, TypeError, ArithmeticError, AttributeError):
            return None

    def clipped(self, window: tuple[dt.datetime, dt.datetime]) -> Record | None:
        """The part inside ``window`` (prorated: the rate is constant inside a record)."""
        start, end = max(self.start, window[0]), min(self.end, window[1])
        if end <= start:
            return None
        if start == self.start and end == self.end:
            return self
        whole = Decimal(int((self.end - self.start).total_seconds()))
        f = Decimal(int((end - start).total_seconds())) / whole if whole > 0 else Decimal(0)
        return replace(self, start=start, end=end, gpu_hours=self.gpu_hours * f, idle_gpu_hours=self.idle_gpu_hours * f,
                       cost=self.cost * f, list_cost=self.list_cost * f)


@dataclass(frozen=True)
class OpenRecord(Record):
    """An open part: accrued, not settled yet (FOCUS ``x_Settled`` false)."""

    settled: bool = False


@dataclass(frozen=True, slots=True)  # one per live pod
class Cursor:
    uid: str
    settled_until: dt.datetime
    seen_until: dt.datetime  # the pod's end as last seen (its start .. now while it runs)
    idle_settled: Decimal
    idle_seen: Decimal  # the pod's cumulative idle GPU-hours as last seen
    terms: Mapping[str, str]
    closed: bool = False  # finished and fully settled; dropped when the pod disappears
    # The rest of the operator's utilization ledger of the pod (``cost.UtilLedger``): GPU-hours observed and
    # their utilization-weighted sum. With ``idle_seen`` it is the trusted copy: the pod's cost annotations
    # are a mirror of it, never read back (users with ``edit`` can rewrite them).
    util_hours: Decimal = Decimal(0)
    util_sum: Decimal = Decimal(0)

    @property
    def util(self) -> c.UtilLedger:
        return c.UtilLedger(self.idle_seen, self.util_hours, self.util_sum)

    def to_json(self) -> str:
        return json.dumps({"u": self.uid, "s": c.format_time(self.settled_until), "v": c.format_time(self.seen_until),
                           "i": c.fmt_decimal(self.idle_settled), "j": c.fmt_decimal(self.idle_seen),
                           "o": c.fmt_decimal(self.util_hours), "w": c.fmt_decimal(self.util_sum),
                           "t": dict(self.terms), "x": self.closed}, sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> Cursor | None:
        try:
            raw = json.loads(text)
            s, v = c.parse_time(raw["s"]), c.parse_time(raw["v"])
            if s is None or v is None:
                return None
            cur = Cursor(str(raw["u"]), s, v, Decimal(raw["i"]), Decimal(raw["j"]),
                         Terms({str(k): str(x) for k, x in raw["t"].items()}), bool(raw.get("x")),
                         Decimal(raw.get("o", "0")), Decimal(raw.get("w", "0")))
        except (ValueError, KeyError, TypeError, ArithmeticError):
            return None
        numbers = (cur.idle_settled, cur.idle_seen, cur.util_hours, cur.util_sum)
        return cur if all(n.is_finite() and n >= 0 for n in numbers) else None

    def part(self, end: dt.datetime, idle: Decimal | None = None) -> Record | None:
        """The unsettled part ``[settled_until, end)`` as a (not yet settled) record."""
        return _segment(self, self.settled_until, end, self.idle_seen if idle is None else idle, end)


def _segment(cur: Cursor, start: dt.datetime, end: dt.datetime, idle_total: Decimal,
             unsettled_end: dt.datetime) -> Record | None:
    if end <= start:
        return None
    hours = c.hours_between(start, end)
    units, rate = Decimal(cur.terms.get("units", "0")), Decimal(cur.terms.get("rate", "0"))
    list_rate = Decimal(cur.terms.get("listRate", cur.terms.get("rate", "0")))
    gpu_hours = units * hours
    unsettled = units * c.hours_between(cur.settled_until, unsettled_end)
    idle_left = max(Decimal(0), idle_total - cur.idle_settled)
    idle = min(gpu_hours, idle_left * gpu_hours / unsettled) if unsettled > 0 else Decimal(0)
    return Record(cur.uid, start, end, q(gpu_hours), q(idle), q(rate * hours), q(list_rate * hours), cur.terms)


def _settle_to(cur: Cursor, until: dt.datetime, idle_total: Decimal,
               whole_days_only: bool) -> tuple[list[Record], Cursor]:
    """Records from ``cur.settled_until`` to ``until``, split at day ends (only whole days when asked)."""
    out: list[Record] = []
    while cur.settled_until < until:
        stop = min(day_end(cur.settled_until), until)
        if whole_days_only and stop != day_end(cur.settled_until):
            break
        rec = _segment(cur, cur.settled_until, stop, idle_total, until)
        if rec is not None:
            out.append(rec)
        cur = replace(cur, settled_until=stop, idle_settled=cur.idle_settled + (rec.idle_gpu_hours if rec else 0))
    return out, cur


def settle(cursor: Cursor | None, uid: str, window: tuple[dt.datetime, dt.datetime] | None, finished: bool,
           terms: Mapping[str, str], idle_total: Decimal, now: dt.datetime) -> tuple[list[Record], Cursor | None]:
    """One pass for a live pod: ``window`` is its [start, end) holding GPUs (None: not started)."""
    if window is None:
        return [], cursor
    start, end = window
    if cursor is None:
        cursor = Cursor(uid, start, end, Decimal(0), idle_total, Terms(terms))
    if cursor.closed:
        return [], cursor
    cursor = replace(cursor, seen_until=max(cursor.seen_until, end), idle_seen=max(cursor.idle_seen, idle_total))
    records: list[Record] = []
    if dict(cursor.terms) != dict(terms):
        cut = min(end, now)
        recs, cursor = _settle_to(cursor, cut, cursor.idle_seen, False)
        records += recs
        cursor = replace(cursor, terms=Terms(terms))
    recs, cursor = _settle_to(cursor, end, cursor.idle_seen, not finished)
    records += recs
    if finished:
        cursor = replace(cursor, closed=True)
    return records, cursor


def settle_gone(cursor: Cursor) -> list[Record]:
    """A pod that disappeared: settled up to when it was last seen, on its cursor's terms."""
    if cursor.closed:
        return []
    recs, _ = _settle_to(cursor, cursor.seen_until, cursor.idle_seen, False)
    return recs


def rows_in(records: Iterable[Record], opens: Iterable[Record],
            window: tuple[dt.datetime, dt.datetime]) -> list[Record]:
    """Settled records and open parts inside ``window`` (clipped), deduplicated by key."""
    return list(iter_rows(records, opens, window))


def iter_rows(records: Iterable[Record], opens: Iterable[Record],
              window: tuple[dt.datetime, dt.datetime]) -> Iterator[Record]:
    """``rows_in`` as a stream (settled records first, in their order, then the open parts): holds only the
    keys seen, so a report or export over any history runs in bounded memory. An open part replaces a
    settled record of the same key (it is the same stretch, read later)."""
    last = {rec.key: rec for rec in opens}  # the last of a key wins, as in a dict
    seen: set[str] = set()
    for rec in records:
        key = rec.key
        if key in seen or key in last:
            continue
        seen.add(key)
        part = rec.clipped(window)
        if part is not None:
            yield part
    for rec in last.values():
        part = rec.clipped(window)
        if part is not None:
            yield part
