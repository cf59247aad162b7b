"""GPU Steward: keep GPU spend on Kubernetes under control without slowing ML teams down."""

__version__ = "0.1.0"
