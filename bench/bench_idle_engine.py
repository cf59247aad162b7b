"""Cost of one idle-evaluation pass over a fleet: decide() per workload, annotation codec, summary.

python bench/bench_idle_engine.py [workloads] [passes] [checkpoint minutes]  — prints decisions/s, codec round trips/s,
annotation sizes, and how many passes produce a changed state (= a patch the operator would send).
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gpu_steward.policy.idle import IdleRules, IdleState, Usage, WorkloadFacts, confirm, decide, needs_persist
from gpu_steward.policy.idle_model import state_from_annotation, state_to_annotation
from gpu_steward.policy.idle_summary import summarize


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    passes = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    rng = random.Random(7)
    checkpoint = timedelta(minutes=float(sys.argv[3])) if len(sys.argv) > 3 else timedelta(minutes=10)
    rules = IdleRules(
        util_threshold_percent=5,
        idle_for=timedelta(minutes=10),
        notice_before=timedelta(minutes=5),
        dry_run=False,
        checkpoint_every=checkpoint,
    )
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    kinds = [rng.choice(["idle", "idle", "busy", "unknown"]) for _ in range(n)]
    states = [IdleState() for _ in range(n)]
    stored: list[IdleState | None] = [None] * n
    running = WorkloadFacts(started_at=t0 - timedelta(hours=1), gpus=4, suspended=False)
    stopped = WorkloadFacts(started_at=t0 - timedelta(hours=1), gpus=4, suspended=True)
    suspended = [False] * n
    decide_s = 0.0
    changed = 0
    decisions = []
    for p in range(passes):
        now = t0 + timedelta(seconds=30 * p)
        decisions = []
        start = time.perf_counter()
        for i in range(n):
            k = kinds[i]
            if suspended[i]:
                usage = Usage.unknown("no pods")
            elif k == "idle":
                usage = Usage.ok(0.5, 1.0, 6, now, 60)
            elif k == "busy":
                usage = Usage.ok(60, 90, 6, now, 60)
            else:
                usage = Usage.unknown("agent timeout")
            d = decide(states[i], usage, stopped if suspended[i] else running, rules, now)
            new = d.state
            for a in d.actions:  # confirm everything at once, as a healthy orchestrator would
                new = confirm(new, a, now)
                if a.kind.value == "Suspend":
                    suspended[i] = True
            if needs_persist(stored[i], new, rules.checkpoint_every):
                changed += 1
                stored[i] = new
            states[i] = new
            decisions.append(d)
        decide_s += time.perf_counter() - start
    start = time.perf_counter()
    texts = [state_to_annotation(s) for s in states]
    enc = time.perf_counter() - start
    start = time.perf_counter()
    for t in texts:
        state_from_annotation(t)
    dec = time.perf_counter() - start
    start = time.perf_counter()
    summary = summarize(decisions, t0 + timedelta(seconds=30 * passes), Decimal("2.50"))
    summ = time.perf_counter() - start
    sizes = sorted(len(t) for t in texts)
    print(f"workloads={n} passes={passes} (30 s apart) checkpoint_every={checkpoint}")
    print(f"decide+confirm: {n * passes / decide_s:,.0f} workloads/s ({decide_s / passes * 1000:.1f} ms per pass)")
    print(f"annotation encode: {n / enc:,.0f}/s, decode: {n / dec:,.0f}/s")
    print(f"annotation bytes: median {sizes[len(sizes) // 2]}, max {sizes[-1]}")
    print(f"annotation writes (needs_persist) per workload per pass: {changed / (n * passes):.4f}")
    print(f"summarize: {summ * 1000:.1f} ms -> {summary.as_status(dry_run=False)}")


if __name__ == "__main__":
    main()
