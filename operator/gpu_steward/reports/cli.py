"""``gpu-steward report`` (showback) and ``gpu-steward export --format focus`` (FinOps FOCUS CSV).

Registered on the top-level parser by ``add_report_commands(sub)`` (called from gpu_steward/cli.py).
Data comes from the cluster through ``gpu_steward.kube.Kube``: the operator's cost history and cursors
(settled records; idle GPU-hours and utilization averages, never the pods' cost annotations, which users
can rewrite), GPU pods (timestamps, labels), nodes (prices) and GPUBudgets (limit, forecast).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from gpu_steward import clikit
from gpu_steward.policy import cost as c
from gpu_steward.reports.focus import FOCUS_COLUMNS, FocusNames, focus_values
from gpu_steward.reports.rows import (
    GroupBy,
    PodRecord,
    Showback,
    ShowbackRow,
    budget_views,
    history_pod_records,
    pod_record_of,
    row_dict,
)
from gpu_steward.settings import Settings


def add_report_commands(sub: Any) -> None:
    rep = sub.add_parser("report", help="showback: GPU-hours, idle GPU-hours, cost, budget and forecast")
    _common(rep)
    rep.add_argument("--by", choices=["namespace", "team", "lease"], default="namespace")
    rep.add_argument("-o", "--output", "--format", dest="fmt", choices=["table", "json", "csv"], default="table")
    rep.add_argument("--idle", action="store_true", help="show idle GPU-hours and their cost first, most idle first")
    rep.set_defaults(func=run_report)
    exp = sub.add_parser("export", help="cost export in the FinOps FOCUS format (CSV)")
    _common(exp)
    exp.add_argument("--format", dest="fmt", choices=["focus"], default="focus")
    exp.add_argument("--output", default="-", help="file to write (default: stdout)")
    exp.add_argument("--cluster-name", default=None,
                     help="BillingAccountId/Name of the rows (default: the operator's focus_billing_account_id)")
    exp.set_defaults(func=run_export)


def _common(p: argparse.ArgumentParser) -> None:
    # Showback is cluster-wide: unlike the other commands, no -n means every namespace (-A says so too).
    clikit.add_kube_flags(p, all_namespaces=True)
    p.add_argument("--from", dest="start", default=None, help="window start, RFC 3339 (default: start of this month)")
    p.add_argument("--to", dest="end", default=None, help="window end, RFC 3339 (default: now)")
    p.add_argument("--since", default=None, help="window start as a duration before now (7d, 12h, 30m)")
    p.add_argument("--operator-namespace", default=None,
                   help="where the operator runs and keeps its cost history and prices (default: gpu-steward)")


def parse_since(text: str) -> dt.timedelta:
    import re

    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?", text.strip())
    if not text.strip() or m is None:
        raise ValueError("--since must be a duration like 7d, 36h or 90m")
    d, h, mi = (int(x or 0) for x in m.groups())
    return dt.timedelta(days=d, hours=h, minutes=mi)


def window_of(start: str | None, end: str | None, now: dt.datetime,
              since: str | None = None) -> tuple[dt.datetime, dt.datetime]:
    if since:
        if start:
            raise ValueError("--since and --from exclude each other")
        start = c.format_time(now - parse_since(since))
    s = c.parse_time(start) if start else c.period_bounds("Monthly", now)[0]
    e = c.parse_time(end) if end else now
    if s is None or e is None:
        raise ValueError("--from/--to must be RFC 3339 timestamps like 2026-03-01T00:00:00Z")
    if e <= s:
        raise ValueError("--to must be after --from")
    return s, e


def month_windows(window: tuple[dt.datetime, dt.datetime]) -> list[tuple[dt.datetime, dt.datetime]]:
    """``window`` split at month boundaries (a FOCUS charge period stays inside its billing period)."""
    out = []
    start = window[0]
    while start < window[1]:
        end = min(window[1], c.period_bounds("Monthly", start)[1])
        out.append((start, end))
        start = end
    return out


CONFIG_MISSING = ("the operator's cost configuration (ConfigMap {name} in namespace {ns}) was not found: is the "
                  "operator installed there and has it run a cost pass? (--operator-namespace)")


class _Sources:
    """What a report or export reads: the operator's configuration, its settled history (streamed), the open
    parts of the pods not settled yet, utilization averages, budgets."""

    def __init__(self, args: argparse.Namespace, settings: Settings, now: dt.datetime, kube: Any = None) -> None:
        from gpu_steward.api.common import API_VERSION
        from gpu_steward.budgets import history as store
        from gpu_steward.budgets.publish import CONFIG_NAME, read_config
        from gpu_steward.policy import history as h

        self.kube = kube = kube or clikit.connect(args)
        self.now = now
        self.namespace = None if getattr(args, "all_namespaces", False) else getattr(args, "namespace", None)
        self.op_ns = getattr(args, "operator_namespace", None) or settings.platform_namespace
        config = read_config(kube, self.op_ns)
        if config is None:
            raise LookupError(CONFIG_MISSING.format(name=CONFIG_NAME, ns=self.op_ns))
        self.config = config
        cursors = store.list_cursors(kube, self.op_ns)
        pods = [p for p in kube.list("v1", "Pod", self.namespace) if c.pod_gpus(p) > 0]
        nodes = {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
        self.budgets = kube.list_optional(API_VERSION, "GPUBudget", self.namespace)
        self.opens: list[h.Record] = []
        self.util: dict[str, Decimal | None] = {}
        by_uid = {p["metadata"]["uid"]: p for p in pods if (p.get("metadata") or {}).get("uid")}
        for uid in sorted(set(by_uid) | set(cursors)):
            pod, cur = by_uid.get(uid), cursors.get(uid)
            self.util[uid] = cur.util.util_avg if cur is not None else None  # the operator's ledger only
            terms = None
            if pod is not None and cur is None:
                node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
                terms = h.terms_of(pod, c.pod_price(config.table, pod, node), config.table.currency,
                                   config.owner_keys, config.team_keys)
            part = store.open_part(pod, cur, terms, now)
            if part is not None:
                self.opens.append(h.OpenRecord(**{f: getattr(part, f) for f in part.__dataclass_fields__}))
        self.opens.sort(key=lambda r: (r.t("namespace"), r.t("pod"), r.start))

    def rows(self, windows: Sequence[tuple[dt.datetime, dt.datetime]]) -> Iterator[Any]:
        """History records and open parts inside each window (clipped), one at a time."""
        from gpu_steward.budgets import history as store
        from gpu_steward.policy import history as h

        for w in windows:
            window = (w[0], min(w[1], self.now))
            for rec in h.iter_rows(store.iter_records(self.kube, self.op_ns, window), self.opens, window):
                if not self.namespace or rec.terms.get("namespace") == self.namespace:
                    yield rec


def _gather(args: argparse.Namespace, settings: Settings, windows: Sequence[tuple[dt.datetime, dt.datetime]],
            now: dt.datetime, kube: Any = None) -> tuple[list[PodRecord], list[dict[str, Any]], Any]:
    """Rows from the operator's settled cost history plus the open parts of the pods not settled yet,
    priced with the configuration the operator runs with (never this process's defaults). Holds every
    row: ``report`` and ``export`` stream through ``_Sources`` instead."""
    src = _Sources(args, settings, now, kube)
    records: list[PodRecord] = []
    for w in windows:
        records += history_pod_records(src.rows([w]), src.util)
    return records, src.budgets, src.config


def render_showback(groups: list[ShowbackRow], by: GroupBy, fmt: str, currency: str, idle: bool = False) -> str:
    if idle:
        groups = sorted(groups, key=lambda g: (-g.idle_cost, g.group))
    rows = [row_dict(r, by, currency) for r in groups]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    columns = [by, "pods", "gpuHours", "idleGpuHours", "cost", "budget", "forecast", "currency"]
    headers = [by.upper(), "PODS", "GPU-HOURS", "IDLE GPU-HOURS", "COST", "BUDGET", "FORECAST", "CURRENCY"]
    if idle:
        columns = [by, "pods", "idleGpuHours", "idleCost", "gpuHours", "cost", "currency"]
        headers = [by.upper(), "PODS", "IDLE GPU-HOURS", "IDLE COST", "GPU-HOURS", "COST", "CURRENCY"]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        return buf.getvalue()
    table = [[("-" if row[k] is None else str(row[k])) for k in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines) + "\n"


def render_report(records: Sequence[PodRecord], budgets: list[dict[str, Any]], by: GroupBy, fmt: str,
                  currency: str, idle: bool = False) -> str:
    acc = Showback(by)
    for r in records:
        acc.add_record(r)
    return render_showback(acc.rows(budget_views(budgets)), by, fmt, currency, idle)


def write_focus(out: Any, records: Iterator[PodRecord] | Sequence[PodRecord], currency: str,
                cluster: str | FocusNames) -> int:
    """FOCUS CSV written to ``out`` row by row (nothing held but the row); returns the rows written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FOCUS_COLUMNS)
    n = 0
    for row in focus_values(records, currency, cluster):
        writer.writerow(row)
        n += 1
    return n


def render_focus(records: Sequence[PodRecord], currency: str, cluster: str | FocusNames) -> str:
    buf = io.StringIO()
    write_focus(buf, records, currency, cluster)
    return buf.getvalue()


def _window(args: argparse.Namespace, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The --from/--to window, or None after telling the user what is wrong with it."""
    try:
        return window_of(args.start, args.end, now, getattr(args, "since", None))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_report(args: argparse.Namespace, *, now: dt.datetime | None = None, kube: Any = None) -> int:
    settings, now = Settings(), now or dt.datetime.now(dt.UTC)
    window = _window(args, now)
    if window is None:
        return 2
    try:
        src = _Sources(args, settings, now, kube)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    acc = Showback(args.by)
    for rec in src.rows([window]):
        acc.add_history(rec)
    sys.stdout.write(render_showback(acc.rows(budget_views(src.budgets)), args.by, args.fmt,
                                     src.config.table.currency, getattr(args, "idle", False)))
    return 0


def run_export(args: argparse.Namespace, *, now: dt.datetime | None = None, kube: Any = None) -> int:
    settings, now = Settings(), now or dt.datetime.now(dt.UTC)
    window = _window(args, now)
    if window is None:
        return 2
    try:
        src = _Sources(args, settings, now, kube)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = src.config.focus
    if args.cluster_name:
        names = FocusNames(names.provider, names.publisher, names.invoice_issuer, args.cluster_name)
    records = (pod_record_of(rec, src.util) for rec in src.rows(month_windows(window)))
    if args.output == "-":
        write_focus(sys.stdout, records, src.config.table.currency, names)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            write_focus(fh, records, src.config.table.currency, names)
    return 0
