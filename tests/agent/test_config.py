from __future__ import annotations

import pytest

from gpu_steward_agent.config import ConfigError, from_env


def test_defaults_and_node_name_from_downward_api() -> None:
    c = from_env({"NODE_NAME": "gpu-node-7"})
    assert c.node_name == "gpu-node-7"
    assert (c.port, c.interval_seconds, c.window_seconds) == (9400, 1.0, 300.0)
    assert c.pod_resources_socket == "/var/lib/kubelet/pod-resources/kubelet.sock"
    assert c.nvml_library_path is None
    assert c.gpu_resource_prefixes == ("nvidia.com/gpu", "nvidia.com/mig-")


def test_overrides() -> None:
    c = from_env(
        {
            "NODE_NAME": "n",
            "GPU_STEWARD_AGENT_PORT": "0",
            "GPU_STEWARD_AGENT_INTERVAL_SECONDS": "0.5",
            "GPU_STEWARD_AGENT_WINDOW_SECONDS": "600",
            "NVML_LIBRARY_PATH": "/x/libnvidia-ml.so.1",
            "GPU_STEWARD_AGENT_PROC_ROOT": "/host/proc",
            "GPU_STEWARD_AGENT_GPU_RESOURCES": "nvidia.com/gpu, example.com/gpu",
        }
    )
    assert (c.port, c.interval_seconds, c.window_seconds) == (0, 0.5, 600.0)
    assert c.nvml_library_path == "/x/libnvidia-ml.so.1"
    assert c.proc_root == "/host/proc"
    assert c.gpu_resource_prefixes == ("nvidia.com/gpu", "example.com/gpu")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GPU_STEWARD_AGENT_PORT", "http", "GPU_STEWARD_AGENT_PORT must be a number"),
        ("GPU_STEWARD_AGENT_PORT", "70000", "GPU_STEWARD_AGENT_PORT must be an integer port"),
        ("GPU_STEWARD_AGENT_INTERVAL_SECONDS", "0", "GPU_STEWARD_AGENT_INTERVAL_SECONDS must be at least"),
        ("GPU_STEWARD_AGENT_WINDOW_SECONDS", "0.5", "GPU_STEWARD_AGENT_WINDOW_SECONDS must be at least"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_env({"NODE_NAME": "n", name: value})


def test_window_shorter_than_interval_is_rejected() -> None:
    with pytest.raises(ConfigError, match="WINDOW_SECONDS"):
        from_env({"GPU_STEWARD_AGENT_INTERVAL_SECONDS": "10", "GPU_STEWARD_AGENT_WINDOW_SECONDS": "5"})
