"""Where budgets and leases publish their suspension requests, and where the idle pass reads them.

A request (``policy.requests``) lives in the record of the budget or lease that makes it (key
``suspensionRequests`` of ``budgets.records``: a ConfigMap in the operator's namespace that only the
operator writes), written by the reconcile *before* the idle pass can act on it and rewritten only
when it changes. So a restart loses none, a user cannot write one, and a record outliving its object
is ignored (its uid must be a live budget's or lease's).

Under the global ``dry_run`` no record is written; the requests then live in the operator's memory
(``RequestBook``) so the idle pass can still report what it would do — and touch nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from gpu_steward.api.common import API_VERSION
from gpu_steward.budgets.records import RecordStore
from gpu_steward.kube import Kube
from gpu_steward.policy.requests import Published, from_json, to_json
from gpu_steward.settings import Settings

RECORD_KEY = "suspensionRequests"
SOURCES = (("lease", "ExperimentLease"), ("budget", "GPUBudget"))


def encode(published: list[Published]) -> list[dict[str, Any]]:
    return [to_json(p) for p in published]


class RequestBook:
    """The requests of the current process, per budget/lease uid (dry-run only; see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, list[dict[str, Any]]] = {}

    def put(self, uid: str, requests: list[dict[str, Any]]) -> None:
        with self._lock:
            if requests:
                self._by_uid[uid] = requests
            else:
                self._by_uid.pop(uid, None)

    def by_uid(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return dict(self._by_uid)


def load(kube: Kube, settings: Settings, book: RequestBook | None = None) -> list[Published]:
    """Every live request: from the records (or, under the global dry-run, the book), of budgets and
    leases that still exist. Four LISTs: the records and the objects of both kinds."""
    raw: dict[str, list[Any]] = {}
    live: set[str] = set()
    for kind, api_kind in SOURCES:
        live |= {o["metadata"]["uid"] for o in kube.list_optional(API_VERSION, api_kind, None)}
        if not settings.dry_run:
            for uid, rec in RecordStore(kube, settings.platform_namespace, kind).all().items():
                items = rec.get(RECORD_KEY)
                if isinstance(items, list) and items:
                    raw[uid] = items
    if settings.dry_run and book is not None:
        raw = book.by_uid()
    out = []
    for uid, items in raw.items():
        if uid in live:
            out += [p for p in (from_json(x) for x in items) if p is not None]
    return out
