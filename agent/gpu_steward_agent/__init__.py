"""GPU Steward node agent: NVML sampling, pod attribution, DCGM-compatible metrics."""

__version__ = "0.1.0"
