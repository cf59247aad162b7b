"""Entry point: `gpu-steward-agent` / `python -m gpu_steward_agent`.

    NODE_NAME=n1 NVML_LIBRARY_PATH=/tmp/fake/libnvidia-ml.so.1 FAKE_NVML_STATE=/tmp/fake/state \\
        GPU_STEWARD_AGENT_PORT=9400 gpu-steward-agent
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import structlog

from . import __version__, logs
from .agent import Agent
from .config import ConfigError, from_env
from .metrics import AgentMetrics
from .server import AgentHTTPServer


def main(argv: list[str] | None = None) -> int:
    try:
        config = from_env()
    except ConfigError as exc:
        print(f"gpu-steward-agent: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_format, config.log_level)
    log = structlog.get_logger("gpu_steward_agent")
    agent = Agent(config)
    metrics = AgentMetrics(agent)
    try:
        server = AgentHTTPServer((config.bind, config.port), agent, metrics)
    except OSError as exc:
        log.error("cannot_listen", bind=config.bind, port=config.port, error=str(exc))
        return 1
    loop = threading.Thread(target=agent.run_forever, name="sampler", daemon=True)
    loop.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signum)
        agent.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "agent_started",
        version=__version__,
        node=config.node_name,
        port=server.server_address[1],
        interval=config.interval_seconds,
        window=config.window_seconds,
        podresources_socket=config.pod_resources_socket,
        nvml_library=config.nvml_library_path or "default",
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        loop.join(timeout=10)
        agent.close()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
