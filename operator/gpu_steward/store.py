"""The operator's state store: what it must remember and users must not edit, in ConfigMaps of its own
namespace (docs/store.md).

Only the operator's ServiceAccount may write ConfigMaps in ``platform_namespace`` (the chart's
``-operator-records`` Role: get, list, create, patch), so nothing here can be forged by the owners of the
workloads it describes (DESIGN.md invariant 9), and it is in the cluster, written before the step it
protects (invariant 4). Entries are sharded (``policy.store_codec``): ``<prefix>-000`` … ``<prefix>-NNN``
hold one data key per workload; ``<prefix>-meta`` says when the store was created and until when the
previous release's annotations may be adopted (upgrade).

Reads: one LIST of the shards when the cache is empty or older than ``resync`` (and a GET of a shard whose
write met a conflict), never a GET per workload. Between LISTs the cache is kept from this process's own
writes: one actor writes (the leader), and every write is conditional on the shard's ``resourceVersion``,
so a write over a state this process did not see fails (409) instead of overwriting it — the shard is
then read again and its workloads wait for the next pass.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import structlog

from gpu_steward.kube import Kube
from gpu_steward.policy.store_codec import (
    Entry,
    ShardFull,
    check_size,
    decode_entry,
    encode_entry,
    shard_name,
    shard_of,
)
from gpu_steward.policy.timeparse import TimeParseError, format_rfc3339, parse_rfc3339

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
STORE_LABEL = "gpusteward.dev/store"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


class StoreUnavailable(Exception):
    """The store could not be read: nothing that depends on remembered state may happen this pass."""


@dataclass
class _Shard:
    rv: str | None = None  # None: the ConfigMap does not exist yet
    data: dict[str, str] = field(default_factory=dict)  # key -> encoded entry, as the API server holds it

    @property
    def size(self) -> int:
        return sum(len(k.encode()) + len(v.encode()) for k, v in self.data.items())


@dataclass(frozen=True)
class Meta:
    created_at: dt.datetime
    adopt_until: dt.datetime


class IdleStore:
    """The idle engine's per-workload state (and dry-run clocks), sharded over ConfigMaps."""

    def __init__(self, kube: Kube, namespace: str, *, prefix: str = "gpusteward-idle", shards: int = 256,
                 resync: dt.timedelta = dt.timedelta(minutes=10),
                 adoption_window: dt.timedelta = dt.timedelta(minutes=15)) -> None:
        self.kube, self.namespace, self.prefix, self.shards = kube, namespace, prefix, max(1, shards)
        self.resync, self.adoption_window = resync, adoption_window
        self._shards: dict[str, _Shard] = {}
        self._where: dict[str, str] = {}  # key -> the shard that holds it
        self._entries: dict[str, Entry] = {}
        self._staged: dict[str, Entry | None] = {}  # key -> new entry, None: remove
        self._loaded_at: dt.datetime | None = None
        self.meta: Meta | None = None

    # ---- reading -------------------------------------------------------------------------------
    @property
    def meta_name(self) -> str:
        return f"{self.prefix}-meta"

    def home(self, key: str) -> str:
        return shard_name(self.prefix, shard_of(key, self.shards))

    def load(self, now: dt.datetime) -> None:
        """Fill the cache with one LIST when it is empty or ``resync`` old. Raises ``StoreUnavailable``."""
        if self._loaded_at is not None and now - self._loaded_at < self.resync and not self._staged:
            return
        try:
            cms = self.kube.list("v1", "ConfigMap", self.namespace, label_selector=f"{STORE_LABEL}=idle")
            if self.meta is None:
                self.meta = self._load_meta(now)
        except Exception as exc:
            raise StoreUnavailable(f"the state store in {self.namespace} could not be read: "
                                   f"{type(exc).__name__}: {exc}") from exc
        self._shards, self._where, self._entries, self._staged = {}, {}, {}, {}
        for cm in cms:
            name = cm["metadata"]["name"]
            if not name.startswith(self.prefix + "-") or name == self.meta_name:
                continue
            self._take(name, cm)
        self._loaded_at = now

    def _take(self, name: str, cm: JSON | None) -> None:
        """(Re)place one shard in the cache from what the API server returned."""
        old = self._shards.pop(name, None)
        for key in (old.data if old else {}):
            if self._where.get(key) == name:
                del self._where[key]
                self._entries.pop(key, None)
        if cm is None:
            return
        data = {k: v for k, v in ((cm.get("data") or {}).items()) if isinstance(v, str)}
        self._shards[name] = _Shard(cm["metadata"].get("resourceVersion"), data)
        for key, text in data.items():
            entry, problem = decode_entry(text)
            if entry is None:
                log.warning("store entry unreadable; its workload starts afresh", shard=name, key=key,
                            problem=problem)
                continue
            held = self._where.get(key)
            # A key in two shards (a crash while it moved after a resharding): the one in its home shard
            # was written first, so it is the newer; otherwise the later write wins.
            if held is None or name == self.home(key) or (held != self.home(key) and _later(entry, self._entries[key])):
                self._where[key], self._entries[key] = name, entry

    def _load_meta(self, now: dt.datetime) -> Meta:
        cm = self.kube.get("v1", "ConfigMap", self.meta_name, self.namespace)
        if cm is None:
            meta = Meta(now, now + self.adoption_window)
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": self.meta_name, "namespace": self.namespace,
                                 "labels": {MANAGED_BY_LABEL: "gpu-steward", STORE_LABEL: "idle-meta"}},
                    "data": {"createdAt": format_rfc3339(meta.created_at),
                             "adoptLegacyUntil": format_rfc3339(meta.adopt_until)}}
            try:
                self.kube.create(body, dry_run=False)
                return meta
            except Exception as exc:
                if getattr(exc, "status", None) != 409:
                    raise
                cm = self.kube.get("v1", "ConfigMap", self.meta_name, self.namespace)
        data = (cm or {}).get("data") or {}
        try:
            return Meta(parse_rfc3339(data["createdAt"]), parse_rfc3339(data["adoptLegacyUntil"]))
        except (KeyError, TypeError, TimeParseError):
            # Unreadable: the store exists, so the upgrade is long past. Adopt nothing.
            return Meta(now, now)

    def adoption_open(self, now: dt.datetime) -> bool:
        """Whether the previous release's annotations may still be taken over (the first minutes after the
        store was created; never afterwards, whatever a workload carries)."""
        return self.meta is not None and now < self.meta.adopt_until

    def get(self, key: str) -> Entry | None:
        if key in self._staged:
            return self._staged[key]
        return self._entries.get(key)

    def entries(self) -> dict[str, Entry]:
        out = dict(self._entries)
        for key, entry in self._staged.items():
            if entry is None:
                out.pop(key, None)
            else:
                out[key] = entry
        return out

    # ---- writing -------------------------------------------------------------------------------
    def put(self, key: str, entry: Entry) -> None:
        self._staged[key] = entry

    def remove(self, key: str) -> None:
        self._staged[key] = None

    def flush(self) -> dict[str, str]:
        """Write what was staged: one conditional write per shard touched. Returns the keys that were
        *not* written, with why (their workloads must not act on them); the rest are stored."""
        staged, self._staged = self._staged, {}
        failed: dict[str, str] = {}
        changes: dict[str, dict[str, str | None]] = {}
        moved: dict[str, str] = {}  # key -> the shard it leaves once its home shard holds it
        for key, entry in staged.items():
            held = self._where.get(key)
            if entry is None:
                if held is not None:
                    changes.setdefault(held, {})[key] = None
                continue
            home = self.home(key)
            text = encode_entry(entry)
            if held == home and self._shards[home].data.get(key) == text:
                continue
            changes.setdefault(home, {})[key] = text
            if held is not None and held != home:
                moved[key] = held
        later: dict[str, dict[str, str | None]] = {}
        for name, change in sorted(changes.items()):
            failed.update(self._write(name, change))
        for key, old in moved.items():
            if key not in failed:
                later.setdefault(old, {})[key] = None
        for name, change in sorted(later.items()):
            self._write(name, change)  # a leftover copy is harmless: the home shard's wins on reading
        if failed:  # one line per flush, however many entries: a full shard must not flood the log
            key, why = next(iter(sorted(failed.items())))
            log.warning("store entries not written; their workloads wait", count=len(failed), first=key, error=why)
        return failed

    def _write(self, name: str, change: dict[str, str | None]) -> dict[str, str]:
        shard = self._shards.get(name) or _Shard()
        data = dict(shard.data)
        refused: dict[str, str] = {}
        for key, text in sorted(change.items(), key=lambda kv: 0 if kv[1] is None else len(kv[1])):
            trial = dict(data)
            if text is None:
                trial.pop(key, None)
            else:
                trial[key] = text
            grows = text is not None and len(text) > len(data.get(key, ""))
            try:
                if grows:
                    check_size(name, _size(trial), len(trial))
            except ShardFull as exc:
                refused[key] = str(exc)
                continue
            data = trial
        change = {k: v for k, v in change.items() if k not in refused}
        if not change:
            return refused
        try:
            if shard.rv is None:
                out = self.kube.create({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": self.namespace,
                                 "labels": {MANAGED_BY_LABEL: "gpu-steward", STORE_LABEL: "idle"}},
                    "data": data}, dry_run=False)
            else:
                out = self.kube.patch("v1", "ConfigMap", name, self.namespace,
                                      {"metadata": {"resourceVersion": shard.rv}, "data": change}, dry_run=False)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            if getattr(exc, "status", None) == 409:  # someone wrote it since we read it: read it again
                why = f"conflict on {name}: read again, the next pass decides from what it holds"
                try:
                    self._take(name, self.kube.get("v1", "ConfigMap", name, self.namespace))
                except Exception:
                    self._loaded_at = None  # a full LIST next pass
            return {**refused, **{k: why for k in change}}
        meta = (out or {}).get("metadata") or {}
        rv = meta.get("resourceVersion") or meta.get("resource_version")
        self._take(name, {"metadata": {"resourceVersion": rv}, "data": data})
        if rv is None:
            self._loaded_at = None  # cannot tell the new version: read everything next pass
        return refused

    def stats(self) -> dict[str, int]:
        """Shards, entries and the largest shard's size in bytes (for logs and the sizing test)."""
        return {"shards": len(self._shards), "entries": len(self._entries),
                "largest_bytes": max((s.size for s in self._shards.values()), default=0)}


def _size(data: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


def _later(a: Entry, b: Entry) -> bool:
    return (a.written_at or _EPOCH) > (b.written_at or _EPOCH)


__all__ = ["STORE_LABEL", "IdleStore", "Meta", "StoreUnavailable"]
