"""Agent configuration from the environment (a DaemonSet sets these; NODE_NAME comes from the Downward API).

Plain dataclass rather than pydantic-settings: the agent runs on every GPU node and keeps its resident
memory small.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "GPU_STEWARD_AGENT_"
DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
DEFAULT_GPU_RESOURCES = ("nvidia.com/gpu", "nvidia.com/mig-")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AgentConfig:
    node_name: str
    port: int = 9400  # dcgm-exporter's port, so scrape configs written for it need no change
    bind: str = "0.0.0.0"
    interval_seconds: float = 1.0
    window_seconds: float = 300.0
    pod_resources_socket: str = DEFAULT_SOCKET
    proc_root: str = "/proc"
    nvml_library_path: str | None = None  # None: pynvml finds libnvidia-ml.so.1 itself
    gpu_resource_prefixes: tuple[str, ...] = DEFAULT_GPU_RESOURCES
    log_format: str = "json"
    log_level: str = "INFO"
    dcgm_metrics: bool = True  # False: publish no DCGM_FI_* series (dcgm-exporter already runs on the node)


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{PREFIX}{name} must be at least {minimum}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(PREFIX + name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{PREFIX}{name} must be true or false, got {env.get(PREFIX + name)!r}")


def from_env(env: Mapping[str, str] | None = None) -> AgentConfig:
    env = os.environ if env is None else env
    port = _number(env, "PORT", 9400, 0)
    if port != int(port) or port > 65535:
        raise ConfigError(f"{PREFIX}PORT must be an integer port number, got {env.get(PREFIX + 'PORT')!r}")
    interval = _number(env, "INTERVAL_SECONDS", 1.0, 0.05)
    window = _number(env, "WINDOW_SECONDS", 300.0, 1.0)
    if window < interval:
        raise ConfigError(f"{PREFIX}WINDOW_SECONDS ({window}) must not be shorter than the interval ({interval})")
    prefixes = tuple(p.strip() for p in env.get(PREFIX + "GPU_RESOURCES", "").split(",") if p.strip())
    return AgentConfig(
        node_name=env.get("NODE_NAME") or socket.gethostname(),
        port=int(port),
        bind=env.get(PREFIX + "BIND", "0.0.0.0"),
        interval_seconds=interval,
        window_seconds=window,
        pod_resources_socket=env.get(PREFIX + "POD_RESOURCES_SOCKET", DEFAULT_SOCKET),
        proc_root=env.get(PREFIX + "PROC_ROOT", "/proc"),
        nvml_library_path=env.get("NVML_LIBRARY_PATH") or None,
        gpu_resource_prefixes=prefixes or DEFAULT_GPU_RESOURCES,
        log_format=env.get(PREFIX + "LOG_FORMAT", "json"),
        log_level=env.get(PREFIX + "LOG_LEVEL", "INFO"),
        dcgm_metrics=_flag(env, "DCGM_METRICS", True),
    )
