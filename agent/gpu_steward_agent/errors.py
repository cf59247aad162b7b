"""NVML error codes to the names used in metrics and logs (GPU_IS_LOST, NOT_SUPPORTED, ...)."""

from __future__ import annotations

import pynvml

_PREFIX = "NVML_ERROR_"
_NAMES: dict[int, str] = {
    value: name[len(_PREFIX) :]
    for name, value in vars(pynvml).items()
    if name.startswith(_PREFIX) and isinstance(value, int)
}


def kind(exc: BaseException) -> str:
    """A short, bounded label for an exception from pynvml (metric label cardinality stays small)."""
    if isinstance(exc, pynvml.NVMLError):
        return _NAMES.get(getattr(exc, "value", -1), "UNKNOWN")
    return type(exc).__name__
