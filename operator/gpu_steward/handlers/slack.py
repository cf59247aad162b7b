"""kopf wiring for Slack buttons: the interactivity endpoint runs while the operator runs (only when a
signing secret and a bot token are configured; without them notices carry no buttons)."""

from __future__ import annotations

from typing import Any

import kopf

from gpu_steward.notify.interactions_server import start_server
from gpu_steward.runtime import get_runtime

_SERVER = "gpusteward_slack_interactions"


@kopf.on.startup()
async def start_slack_interactions(memo: kopf.Memo, **_: Any) -> None:
    rt = get_runtime()
    memo[_SERVER] = await start_server(rt.kube, rt.settings)


@kopf.on.cleanup()
async def stop_slack_interactions(memo: kopf.Memo, **_: Any) -> None:
    server = memo.get(_SERVER)
    if server is not None:
        await server.stop()
