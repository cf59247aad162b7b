"""Where the operator's memory goes, from inside the running process (a diagnostic, off by default).

Started with ``GPUSTEWARD_TRACEMALLOC=<frames>`` (tracing from the operator's start, after its imports;
Python's own ``PYTHONTRACEMALLOC`` works too but also traces the imports, which then take minutes), the
operator writes its live allocations, grouped by traceback, to ``$TMPDIR/gpu-steward-tracemalloc-<pid>.txt``
on each SIGUSR1 (``kill -USR1 <pid>``). bench/scale.py uses it (``--tracemalloc``) to attribute the bytes
per GPU pod that a synthetic profile cannot see. Tracing slows allocation and adds its own memory: never
on in production.
"""

from __future__ import annotations

import os
import signal
import tempfile
import tracemalloc
from pathlib import Path
from types import FrameType


def dump_path(pid: int | None = None) -> Path:
    return Path(tempfile.gettempdir()) / f"gpu-steward-tracemalloc-{pid or os.getpid()}.txt"


def dump(path: Path, top: int = 40) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")))
    total = sum(s.size for s in snapshot.statistics("filename"))
    lines = [f"total traced: {total / 1e6:.1f} MB", "", "== by line =="]
    for stat in snapshot.statistics("lineno")[:top]:
        lines.append(f"{stat.size / 1e6:8.2f} MB {stat.count:9d} blocks  {stat.traceback[0]}")
    lines += ["", "== by traceback (innermost last) =="]
    for stat in snapshot.statistics("traceback")[:top]:
        lines.append(f"{stat.size / 1e6:8.2f} MB {stat.count:9d} blocks")
        lines.extend(f"      {line}" for line in stat.traceback.format()[-16:])
    partial = path.with_suffix(".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(path)  # whole or absent: a reader polls for it


ENV = "GPUSTEWARD_TRACEMALLOC"  # not GPU_STEWARD_*: a diagnostic, not a setting


def _frames() -> int:
    frames = os.environ.get(ENV, "")
    return int(frames) if frames.isdigit() else 0


def begin() -> None:
    """Start tracing (when asked): called once the imports are done, before the watches list anything."""
    if _frames() > 0 and not tracemalloc.is_tracing():
        tracemalloc.start(_frames())


def install() -> bool:
    """Dump on SIGUSR1 when asked to trace (``GPUSTEWARD_TRACEMALLOC``, or ``PYTHONTRACEMALLOC``); from the
    main thread (signal handlers are installed there). True when installed."""
    if _frames() <= 0 and not tracemalloc.is_tracing():
        return False

    def on_signal(_: int, __: FrameType | None) -> None:
        dump(dump_path())

    signal.signal(signal.SIGUSR1, on_signal)
    return True
