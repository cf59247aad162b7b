"""The operator's state store (docs/store.md): sizes at 40,000 workloads, the size guard, conditional
writes, restarts, dry-run clocks, the upgrade from the annotation, and forgetting."""

from __future__ import annotations

import datetime as dt
import json

from idle_world import NS, T0, FakeKube, World, job, policy

from gpu_steward.policy.idle_model import IdleState, Mark, OptOut, Phase
from gpu_steward.policy.store_codec import (
    CONFIGMAP_LIMIT,
    SHARD_SOFT_LIMIT,
    Entry,
    EntryRef,
    data_size,
    decode_entry,
    encode_entry,
    entry_key,
    shard_of,
)
from gpu_steward.policy.timeparse import format_rfc3339
from gpu_steward.settings import Settings
from gpu_steward.store import IdleStore
from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION

MIN = dt.timedelta(minutes=1)
WORKLOADS = 40_000
PLATFORM = "gpu-steward"
SHARDS = Settings().store_shards


def _worst_entry(i: int) -> tuple[str, Entry]:
    """A workload with the longest names the API allows and every field of the state set."""
    ns = f"team-{i % 500:03d}-" + "n" * 50  # 59 characters (a namespace may have 63)
    name = f"w{i:05d}-" + "x" * 240  # 247 characters (an object name may have 253)
    at = T0 + dt.timedelta(microseconds=123456)
    full = Mark(intended_at=at, done_at=at)
    state = IdleState(phase=Phase.SUSPENDED, episode=999, idle_since=at, idle_covered_to=at, warn=full,
                      warn_suspend_at=at, warn_policy="platform-namespace-" + "p" * 40 + "/" + "q" * 60,
                      suspend=full, suspended_notice=full, resume=full, resumed_notice=full, suspended_gpus=64,
                      would_suspend_at=at, would_suspend_gpus=64, resumed_at=at, reclaimed_gpu_hours=123456.123456,
                      would_save_gpu_hours=654321.654321, snooze=OptOut("sha256:" + "a" * 40, at),
                      exemption=OptOut("sha256:" + "b" * 40, at))
    ref = EntryRef("kubeflow.org/v1", "PyTorchJob", ns, name, "0b9f3c1e-5d2a-4c8e-9a7b-1f2e3d4c5b6a")
    return entry_key("kubeflow.org", "PyTorchJob", ns, name), Entry(ref, state, state, at, adopted=True)


def test_shards_stay_far_under_the_configmap_limit_at_40000_workloads():
    shards: dict[int, dict[str, str]] = {}
    for i in range(WORKLOADS):
        key, entry = _worst_entry(i)
        assert len(key) <= 253 and all(c.isalnum() or c in "-._" for c in key)
        shards.setdefault(shard_of(key, SHARDS), {})[key] = encode_entry(entry)
    sizes = sorted(data_size(d) for d in shards.values())
    assert len(shards) == SHARDS
    # Worst case (every name at its maximum, every field set): the fullest shard stays under the guard.
    assert sizes[-1] < SHARD_SOFT_LIMIT < CONFIGMAP_LIMIT, sizes[-1]
    assert sizes[-1] < 1.25 * sizes[len(sizes) // 2]  # the hash spreads evenly
    print(f"40,000 worst-case entries over {SHARDS} shards: median {sizes[len(sizes) // 2]} B, largest {sizes[-1]} B")


def test_the_store_writes_40000_workloads_with_one_write_per_shard():
    kube = FakeKube()
    store = IdleStore(kube, PLATFORM)  # type: ignore[arg-type]
    store.load(T0)
    for i in range(WORKLOADS):
        ref = EntryRef("batch/v1", "Job", f"team-{i % 300}", f"train-{i}", f"uid-{i}")
        state = IdleState(phase=Phase.WARNED, episode=1, idle_since=T0, idle_covered_to=T0,
                          warn=Mark(T0, T0), warn_suspend_at=T0 + 15 * MIN, warn_policy="gpu-steward/idle")
        store.put(entry_key("batch", "Job", ref.namespace, ref.name), Entry(ref, state, written_at=T0))
    assert store.flush() == {}
    cms = [cm for (_, kind, ns, _), cm in kube.objects.items() if kind == "ConfigMap" and ns == PLATFORM]
    assert len(cms) == SHARDS + 1  # the shards and the meta record
    assert max(data_size(cm.get("data") or {}) for cm in cms) < 100 * 1024
    again = IdleStore(kube, PLATFORM)  # type: ignore[arg-type]
    again.load(T0)  # one LIST
    assert again.stats()["entries"] == WORKLOADS


def test_a_full_shard_refuses_growth_with_a_message_that_says_what_to_raise():
    kube = FakeKube()
    store = IdleStore(kube, PLATFORM, shards=1)  # type: ignore[arg-type]
    store.load(T0)
    entries = dict(_worst_entry(i) for i in range(700))
    for key, entry in entries.items():
        store.put(key, entry)
    failed = store.flush()
    assert failed and len(failed) < 700
    assert "raise the setting store_shards" in next(iter(failed.values()))
    [shard] = [cm for (_, kind, _, name), cm in kube.objects.items() if kind == "ConfigMap" and name.endswith("-000")]
    assert data_size(shard["data"]) <= SHARD_SOFT_LIMIT
    # More shards: new and refused entries go to their new shard; the old ones move when next written.
    wider = IdleStore(kube, PLATFORM, shards=16)  # type: ignore[arg-type]
    wider.load(T0)
    for key in failed:
        wider.put(key, entries[key])
    # All but those whose new home is the full shard itself.
    assert set(wider.flush()) <= {k for k in failed if wider.home(k).endswith("-000")}


def test_a_write_over_a_stale_read_conflicts_and_is_not_lost():
    kube = FakeKube()
    one, two = IdleStore(kube, PLATFORM, shards=1), IdleStore(kube, PLATFORM, shards=1)  # type: ignore[arg-type]
    ref = EntryRef("batch/v1", "Job", NS, "a", "uid-a")
    one.load(T0)
    one.put("k", Entry(ref, IdleState(phase=Phase.IDLE, idle_since=T0), written_at=T0))
    assert one.flush() == {}
    two.load(T0)
    one.put("k", Entry(ref, IdleState(phase=Phase.WARNED, idle_since=T0, warn=Mark(T0, T0)), written_at=T0))
    assert one.flush() == {}
    two.put("k", Entry(ref, IdleState(phase=Phase.SUSPENDED, idle_since=T0), written_at=T0))  # a stale read
    failed = two.flush()
    assert "conflict" in failed["k"]
    entry = two.get("k")  # read again: the newer state, not the stale one
    assert entry is not None and entry.state is not None and entry.state.phase is Phase.WARNED


def _warned_at(w: World, name: str) -> list[dt.datetime]:
    return [e for e in w.kube.events if e["name"] == name and e["reason"] == "IdleWarning"]  # type: ignore[misc]


def test_a_restart_continues_from_the_store_even_when_the_annotation_went_with_it():
    w = World(policy(["Event"]), legacy_adoption_seconds=0)
    train = w.run(job("train"))
    w.passes(8)  # idle 5 min: warned
    assert len(_warned_at(w, "train")) == 1
    entry = w.entry(train)
    assert entry is not None and entry.state is not None and entry.state.warn.done_at is not None
    w.annotate(train, **{IDLE_STATE_ANNOTATION: None})
    w.restart()  # a new controller (failover): nothing in memory
    warned = entry.state.warn.done_at
    w.passes(30, until=lambda: w.suspended(train))
    assert w.suspended(train) and len(_warned_at(w, "train")) == 1  # no second warning
    done = w.entry(train)
    assert done is not None and done.state is not None and done.state.suspend.done_at is not None
    assert done.state.suspend.done_at >= warned + dt.timedelta(minutes=15)
    assert json.loads(w.state(train) or "{}")["phase"] == "Suspended"  # the mirror is back


def test_dry_run_clocks_live_in_the_store_and_survive_a_restart():
    w = World(policy(["Event"], dry_run=True))
    train = w.run(job("train"))
    w.passes(10)
    entry = w.entry(train)
    assert entry is not None and entry.dry is not None and entry.dry.idle_since is not None
    assert entry.state is None  # a dry-run state is never an enforcing one
    w.restart()
    w.passes(20)
    assert w.status()["wouldSuspend"] == 1
    after = w.entry(train)
    assert after is not None and after.dry is not None
    assert after.dry.idle_since == entry.dry.idle_since  # the same clock, not one restarted at the restart
    assert w.kube.workload_patches() == []  # still nothing written to the workload


def _legacy_warned(at: dt.datetime, snooze_seen: str | None = None) -> str:
    """What the previous release wrote after warning at ``at`` and evaluating until just before T0
    (tests/unit/test_idle_upgrade.py's shape)."""
    state: dict[str, object] = {"v": 1, "phase": "Warned", "episode": 1, "idleSince": format_rfc3339(at - 5 * MIN),
                                "idleCoveredTo": format_rfc3339(T0 - MIN),
                                "warn": {"intended": format_rfc3339(at), "done": format_rfc3339(at)}}
    if snooze_seen:
        state["snooze"] = {"value": "2099-01-01T00:00:00Z", "seen": snooze_seen}
    return json.dumps(state)


def test_the_upgrade_adopts_the_previous_release_state_once():
    w = World(policy(["Event"]))
    old = job("late", annotations={IDLE_STATE_ANNOTATION: _legacy_warned(T0 - 5 * MIN)})
    late = w.run(old)
    w.passes(30, until=lambda: w.suspended(late))
    assert w.suspended(late) and _warned_at(w, "late") == []  # its old warning counted, not repeated
    entry = w.entry(late)
    assert entry is not None and entry.adopted and entry.state is not None
    assert entry.state.suspend.done_at is not None and entry.state.suspend.done_at >= T0 + 10 * MIN


def test_an_adopted_snooze_is_bounded_from_now_whatever_the_annotation_said():
    w = World(policy(["Event"]))
    legacy = _legacy_warned(T0 - 5 * MIN, "2098-06-01T00:00:00Z")
    held = job("held", annotations={IDLE_STATE_ANNOTATION: legacy,
                                    "gpusteward.dev/snooze-until": "2099-01-01T00:00:00Z"})
    w.run(held)
    w.passes(1)
    entry = w.entry(held)
    assert entry is not None and entry.state is not None and entry.state.snooze is not None
    assert entry.state.snooze.seen_at == T0  # clamped: the bound is T0 + maxSnooze, not 2098 + maxSnooze
    w.passes(120, until=lambda: w.suspended(held))
    assert w.suspended(held)


def test_after_the_adoption_window_the_annotation_is_never_read():
    w = World(policy(["Event"]))
    w.passes(20)  # the store exists since T0; its window (15 min) has closed
    late = w.run(job("late", annotations={IDLE_STATE_ANNOTATION: _legacy_warned(T0 - 5 * MIN)}))
    w.passes(40, until=lambda: w.suspended(late))
    assert w.suspended(late) and len(_warned_at(w, "late")) == 1  # warned afresh first


def test_entries_of_workloads_gone_are_forgotten_after_the_retention():
    w = World(policy(["Event"]), store_retention_seconds=3600)
    train = w.run(job("train"))
    w.passes(3)
    assert w.entry(train) is not None
    w.stop_pods(train)  # finished: no pass sees it any more
    w.passes(30)
    assert w.entry(train) is not None
    w.passes(45)
    assert w.entry(train) is None


def test_store_entries_round_trip_and_garbage_is_no_entry():
    _, entry = _worst_entry(7)
    back, problem = decode_entry(encode_entry(entry))
    assert problem is None and back is not None and encode_entry(back) == encode_entry(entry)
    for bad in ("", "{", "[]", '{"v":2}', '{"v":1,"ref":{}}', '{"v":1,"ref":{"apiVersion":"v1","kind":"Pod",'
                '"name":"p"},"state":{"v":1,"phase":"Nope"}}'):
        assert decode_entry(bad)[0] is None
    long = entry_key("example.com", "Thing", "n" * 63, "x" * 253)
    assert len(long) <= 253 and long != entry_key("example.com", "Thing", "n" * 63, "x" * 252 + "y")
