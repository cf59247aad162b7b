"""``gpu-steward report`` (showback) and ``gpu-steward export --format focus`` (FinOps FOCUS CSV).

Registered on the top-level parser by ``add_report_commands(sub)`` (called from gpu_steward/cli.py).
Data comes from the cluster through ``gpu_steward.kube.Kube``: GPU pods (timestamps, labels, our
cost annotations), nodes (prices) and GPUBudgets (limit, forecast).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

from gpu_steward import clikit
from gpu_steward.policy import cost as c
from gpu_steward.reports.focus import FOCUS_COLUMNS, focus_rows
from gpu_steward.reports.rows import GroupBy, PodRecord, budget_views, pod_records, row_dict, showback
from gpu_steward.settings import Settings


def add_report_commands(sub: Any) -> None:
    rep = sub.add_parser("report", help="showback: GPU-hours, idle GPU-hours, cost, budget and forecast")
    _common(rep)
    rep.add_argument("--by", choices=["namespace", "team", "lease"], default="namespace")
    rep.add_argument("-o", "--output", "--format", dest="fmt", choices=["table", "json", "csv"], default="table")
    rep.set_defaults(func=run_report)
    exp = sub.add_parser("export", help="cost export in the FinOps FOCUS format (CSV)")
    _common(exp)
    exp.add_argument("--format", dest="fmt", choices=["focus"], default="focus")
    exp.add_argument("--output", default="-", help="file to write (default: stdout)")
    exp.add_argument("--cluster-name", default="kubernetes", help="BillingAccountId/Name of the rows")
    exp.set_defaults(func=run_export)


def _common(p: argparse.ArgumentParser) -> None:
    # Showback is cluster-wide: unlike the other commands, no -n means every namespace (-A says so too).
    clikit.add_kube_flags(p, all_namespaces=True)
    p.add_argument("--from", dest="start", default=None, help="window start, RFC 3339 (default: start of this month)")
    p.add_argument("--to", dest="end", default=None, help="window end, RFC 3339 (default: now)")


def window_of(start: str | None, end: str | None, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
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


def _gather(args: argparse.Namespace, settings: Settings, windows: Sequence[tuple[dt.datetime, dt.datetime]],
            now: dt.datetime, kube: Any = None) -> tuple[list[PodRecord], list[dict[str, Any]]]:
    from gpu_steward.api.common import API_VERSION
    from gpu_steward.budgets.costs import price_table
    kube = kube or clikit.connect(args)
    namespace = None if getattr(args, "all_namespaces", False) else getattr(args, "namespace", None)
    pods = kube.list("v1", "Pod", namespace)
    nodes = kube.list("v1", "Node")
    budgets = kube.list_optional(API_VERSION, "GPUBudget", namespace)
    records: list[PodRecord] = []
    for w in windows:
        records += pod_records(pods, nodes, price_table(settings), w, now, settings.owner_keys, settings.team_keys)
    return records, budgets


def render_report(records: Sequence[PodRecord], budgets: list[dict[str, Any]], by: GroupBy, fmt: str,
                  currency: str) -> str:
    rows = [row_dict(r, by, currency) for r in showback(records, by, budget_views(budgets))]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    columns = [by, "pods", "gpuHours", "idleGpuHours", "cost", "budget", "forecast", "currency"]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        return buf.getvalue()
    headers = [by.upper(), "PODS", "GPU-HOURS", "IDLE GPU-HOURS", "COST", "BUDGET", "FORECAST", "CURRENCY"]
    table = [[("-" if row[k] is None else str(row[k])) for k in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines) + "\n"


def render_focus(records: Sequence[PodRecord], currency: str, cluster: str) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(FOCUS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(focus_rows(records, currency, cluster))
    return buf.getvalue()


def _window(args: argparse.Namespace, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The --from/--to window, or None after telling the user what is wrong with it."""
    try:
        return window_of(args.start, args.end, now)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_report(args: argparse.Namespace, *, now: dt.datetime | None = None, kube: Any = None) -> int:
    settings, now = Settings(), now or dt.datetime.now(dt.UTC)
    window = _window(args, now)
    if window is None:
        return 2
    records, budgets = _gather(args, settings, [window], now, kube)
    sys.stdout.write(render_report(records, budgets, args.by, args.fmt, settings.currency))
    return 0


def run_export(args: argparse.Namespace, *, now: dt.datetime | None = None, kube: Any = None) -> int:
    settings, now = Settings(), now or dt.datetime.now(dt.UTC)
    window = _window(args, now)
    if window is None:
        return 2
    records, _ = _gather(args, settings, month_windows(window), now, kube)
    text = render_focus(records, settings.currency, args.cluster_name)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return 0
