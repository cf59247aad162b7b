"""The operator's background evaluation loops: started at start-up, cancelled at clean-up.

Start-up and clean-up are those of the acting kopf operator, which runs only on the leader
(handlers/run.py); the leadership checks here are the second line of defence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
import structlog

from gpu_steward.runtime import get_runtime

log = structlog.get_logger(__name__)
_TASKS = "gpusteward_loops"


async def run_every(interval: float, one_pass: Callable[[], Awaitable[None]], name: str,
                    initial_delay: float = 0.0) -> None:
    """Run ``one_pass`` every ``interval`` seconds; a failed pass (an apiserver blip) never ends the loop."""
    await asyncio.sleep(initial_delay)
    rt = get_runtime()
    while True:
        try:
            # The loops run only on the leader; a leader past its renew deadline skips the pass while
            # the acting operator is being stopped (invariant 8).
            if rt.is_leader():
                await one_pass()
            else:
                log.info("pass skipped: not the leader", loop=name)
        except Exception:
            log.exception("pass failed", loop=name)
        await asyncio.sleep(interval)


def require_leader() -> None:
    """First line of every kopf handler that acts: they run only on the leader at all, but a leader past
    its renew deadline (being stopped) must not act; kopf retries later, on whichever replica leads."""
    rt = get_runtime()
    if not rt.is_leader():
        raise kopf.TemporaryError("not the leader: left to the replica that holds the Lease",
                                  delay=rt.settings.leader_election_retry_period_seconds)


def current(api_version: str, kind: str, name: str, namespace: str) -> Any:
    """A budget or lease as the operator's watch holds it (no request: a timer per object every interval would
    be a GET per object per interval), else as the API has it (just created, not delivered yet; gone)."""
    rt = get_runtime()
    held = rt.watches.held(api_version, kind, namespace, name) if rt.watches is not None else None
    return held if held is not None else rt.kube.get(api_version, kind, name, namespace)


def owned(namespace: str | None, **_: Any) -> bool:
    """kopf ``when=`` filter: the namespaced object belongs to this process's shard (always, unsharded)."""
    return get_runtime().settings.shard().owns(namespace)


def start(memo: kopf.Memo, name: str, interval: float, one_pass: Callable[[], Awaitable[None]],
          initial_delay: float = 0.0) -> None:
    memo.setdefault(_TASKS, {})[name] = asyncio.create_task(run_every(interval, one_pass, name, initial_delay))


@kopf.on.cleanup()
async def stop_loops(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get(_TASKS, {}).values():
        task.cancel()
    source = get_runtime().source
    if source is not None:
        await source.close()
