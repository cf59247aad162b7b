"""The operator's state store, pure part: keys, shards, entry codec and the size guard (no I/O).

The store (``gpu_steward.store``) keeps what the operator must remember and users must not edit — the
idle engine's per-workload state, dry-run idle clocks included — in ConfigMaps of the operator's own
namespace. One workload is one *entry* (a ConfigMap data key) in one *shard* (a ConfigMap); the shard
is a hash of the entry's key, so 40,000 workloads spread evenly over ``shards`` objects and no object
comes near the API server's 1 MiB limit (docs/store.md has the numbers). A write that would take a shard
over ``SHARD_SOFT_LIMIT`` is refused (``ShardFull``), with the setting to raise in the message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gpu_steward.policy.idle_model import IdleState, state_from_dict, state_to_dict
from gpu_steward.policy.timeparse import TimeParseError, format_rfc3339, parse_rfc3339

ENTRY_VERSION = 1
# The API server refuses a ConfigMap whose data (keys + values) exceeds 1 MiB.
CONFIGMAP_LIMIT = 1024 * 1024
# Writes stop well before it: room for metadata, for the entries of one pass, and for a resharding.
SHARD_SOFT_LIMIT = 768 * 1024
# A ConfigMap key: at most 253 characters of [-._a-zA-Z0-9].
KEY_MAX = 253


class ShardFull(Exception):
    """A write would take a shard past ``SHARD_SOFT_LIMIT``."""


@dataclass(frozen=True)
class EntryRef:
    """The workload an entry belongs to; ``uid`` tells a re-created workload of the same name apart."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None

    @property
    def group(self) -> str:
        return self.api_version.split("/", 1)[0] if "/" in self.api_version else ""


@dataclass(frozen=True)
class WarningMessage:
    """Where the Slack warning of episode ``episode`` landed (bot token): its suspension and resumed notices
    reply in its thread, and its buttons are removed once the workload is suspended."""

    episode: int
    channel: str
    ts: str


@dataclass(frozen=True)
class Entry:
    """One workload's remembered state: ``state`` (enforcing policies), ``dry`` (dry-run idle clocks, kept
    apart so a dry-run would-be warning never counts as a notice), when it was last written, whether
    it was adopted from the previous release's annotation (upgrade), and its last Slack warning."""

    ref: EntryRef
    state: IdleState | None = None
    dry: IdleState | None = None
    written_at: datetime | None = None
    adopted: bool = False
    warning: WarningMessage | None = None


def entry_key(group: str, kind: str, namespace: str, name: str) -> str:
    """``<namespace>_<Kind>[.<group>]_<name>``: readable in ``kubectl get cm -o yaml``, unique (``_`` occurs
    in no namespace, kind, group or object name), and a hash suffix when it would pass 253 characters."""
    kind_part = f"{kind}.{group}" if group else kind
    key = f"{namespace}_{kind_part}_{name}"
    if len(key) <= KEY_MAX and all(c.isalnum() or c in "-._" for c in key):
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    # Readers check the entry's own ref (and uid) against the workload, so even a crafted name equal to
    # another key's digest form only ever reads as "no entry".
    prefix = "".join(c if c.isalnum() or c in "-._" else "-" for c in f"{namespace}_{kind_part}_")
    return prefix[: KEY_MAX - 45] + "sha-" + digest


def shard_of(key: str, shards: int) -> int:
    """A stable bucket in ``range(shards)`` (sha256, not Python's salted ``hash``)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % max(1, shards)


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:03d}"


def _t(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value) if value.microsecond == 0 else value.isoformat()


def encode_entry(entry: Entry) -> str:
    ref = entry.ref
    out: dict[str, Any] = {"v": ENTRY_VERSION,
                           "ref": {"apiVersion": ref.api_version, "kind": ref.kind, "namespace": ref.namespace,
                                   "name": ref.name}}
    if ref.uid:
        out["ref"]["uid"] = ref.uid
    if entry.state is not None:
        out["state"] = state_to_dict(entry.state)
    if entry.dry is not None:
        out["dry"] = state_to_dict(entry.dry)
    if entry.written_at is not None:
        out["at"] = _t(entry.written_at)
    if entry.adopted:
        out["adopted"] = True
    if entry.warning is not None:
        w = entry.warning
        out["slack"] = {"episode": w.episode, "channel": w.channel, "ts": w.ts}
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def decode_entry(text: str) -> tuple[Entry | None, str | None]:
    """Never raises: an entry that cannot be read is (None, why) — its workload starts afresh."""
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("v") != ENTRY_VERSION:
            raise ValueError(f"unsupported entry version {raw.get('v') if isinstance(raw, dict) else raw!r}")
        r = raw.get("ref")
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("apiVersion", "kind", "name")):
            raise ValueError("ref: expected {apiVersion, kind, namespace, name}")
        uid = r.get("uid")
        ref = EntryRef(r["apiVersion"], r["kind"], str(r.get("namespace") or ""), r["name"],
                       uid if isinstance(uid, str) else None)
        states: dict[str, IdleState | None] = {}
        for name in ("state", "dry"):
            if raw.get(name) is None:
                states[name] = None
                continue
            state, problem = state_from_dict(raw[name])
            if problem:
                raise ValueError(f"{name}: {problem}")
            states[name] = replace(state, restored=True)
        at = raw.get("at")
        written = parse_rfc3339(at) if isinstance(at, str) else None
        return Entry(ref, states["state"], states["dry"], written, bool(raw.get("adopted", False)),
                     _warning(raw.get("slack"))), None
    except (ValueError, TypeError, TimeParseError) as exc:
        return None, str(exc)


def _warning(raw: Any) -> WarningMessage | None:
    """The Slack warning's place; one that cannot be read is dropped (notices then stand alone)."""
    if not isinstance(raw, dict):
        return None
    episode, channel, ts = raw.get("episode"), raw.get("channel"), raw.get("ts")
    if isinstance(episode, int) and isinstance(channel, str) and isinstance(ts, str) and channel and ts:
        return WarningMessage(episode, channel, ts)
    return None


def data_size(data: dict[str, str]) -> int:
    """What the API server counts against the 1 MiB: every key and value, in bytes."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


def check_size(shard: str, size: int, entries: int, limit: int = SHARD_SOFT_LIMIT) -> None:
    if size > limit:
        raise ShardFull(
            f"store shard {shard} would hold {size} bytes in {entries} entries, over its {limit}-byte limit "
            f"(ConfigMaps stop at {CONFIGMAP_LIMIT}): raise the setting store_shards (env "
            f"GPU_STEWARD_STORE_SHARDS); existing entries move to their new shard as they are next written")


def adopt_legacy(state: IdleState, now: datetime) -> IdleState:
    """A state found only in the previous release's ``gpusteward.dev/idle-state`` annotation, taken over
    once: opt-out ``seen`` times are clamped to ``now`` so a bound is never past now + the policy's maximum,
    whatever the annotation said."""
    def clamp(opt: Any) -> Any:
        return None if opt is None else replace(opt, seen_at=min(opt.seen_at, now))

    return replace(state, snooze=clamp(state.snooze), exemption=clamp(state.exemption),
                   selector_exemption=clamp(state.selector_exemption), restored=True)


__all__ = [
    "CONFIGMAP_LIMIT",
    "SHARD_SOFT_LIMIT",
    "Entry",
    "EntryRef",
    "ShardFull",
    "WarningMessage",
    "adopt_legacy",
    "check_size",
    "data_size",
    "decode_entry",
    "encode_entry",
    "entry_key",
    "shard_name",
    "shard_of",
]
