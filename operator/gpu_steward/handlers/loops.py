"""The operator's background evaluation loops: started at start-up, cancelled at clean-up."""

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
    while True:
        try:
            await one_pass()
        except Exception:
            log.exception("pass failed", loop=name)
        await asyncio.sleep(interval)


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
