"""A fake NVML library for tests and the local demo — a TEST/DEMO DOUBLE, never used on real GPU nodes.

`build(out_dir)` compiles fakenvml.c (shipped as package data) with gcc into `out_dir/libnvidia-ml.so.1`;
`write_state(path, state)` writes the "hardware" it reports. Point the agent at them with
NVML_LIBRARY_PATH=<lib> and FAKE_NVML_STATE=<state file>. The library re-reads the state file whenever
it changes, so rewriting the file changes what pynvml sees on its next call.

State dict (all keys optional except where noted)::

    {"driver": "550.54.15", "initError": "LIB_RM_VERSION_MISMATCH",
     "gpus": [{"uuid": "GPU-...", "name": "NVIDIA A100-SXM4-80GB", "util": 40, "memUtil": 10,
               "memTotal": 85899345920, "memUsed": 1073741824, "powerMw": 250000, "temp": 55,
               "error": "GPU_IS_LOST",            # every query on this GPU fails with it
               "processUtil": True,               # False: nvmlDeviceGetProcessUtilization NOT_SUPPORTED
               "migCapable": False,
               "processes": [{"pid": 4242, "usedMemory": 1073741824, "smUtil": 35, "memUtil": 8,
                              "gpuInstanceId": 1, "computeInstanceId": 0}],
               "mig": [{"uuid": "MIG-...", "name": "...", "gpuInstanceId": 1, "computeInstanceId": 0,
                        "memTotal": ..., "memUsed": ...}]}]}
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

LIB_NAME = "libnvidia-ml.so.1"
STATE_ENV = "FAKE_NVML_STATE"

_GPU_KEYS = {
    "uuid": "uuid",
    "name": "name",
    "util": "util",
    "memUtil": "memutil",
    "memTotal": "mem_total",
    "memUsed": "mem_used",
    "powerMw": "power_mw",
    "temp": "temp",
    "error": "error",
}
_PROC_KEYS = {
    "pid": "pid",
    "usedMemory": "mem",
    "smUtil": "sm",
    "memUtil": "memutil",
    "gpuInstanceId": "gi",
    "computeInstanceId": "ci",
}
_MIG_KEYS = {
    "uuid": "uuid",
    "name": "name",
    "gpuInstanceId": "gi",
    "computeInstanceId": "ci",
    "memTotal": "mem_total",
    "memUsed": "mem_used",
}


def source_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("fakenvml.c")))


def build(out_dir: str | os.PathLike[str], cc: str | None = None) -> Path:
    """Compile the fake library into out_dir; returns the path of libnvidia-ml.so.1."""
    compiler = cc or os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        raise RuntimeError("no C compiler found (install gcc) to build the fake NVML library")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lib = out / LIB_NAME
    cmd = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o", str(lib), str(source_path()), "-lpthread"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RuntimeError(f"cannot run the C compiler {compiler!r}: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"building the fake NVML library failed: {' '.join(cmd)}\n{proc.stderr}")
    return lib


def _flag(value: Any) -> str:
    return "1" if value else "0"


def render_state(state: dict[str, Any]) -> str:
    """The key=value text the C library parses (see fakenvml.c)."""
    lines = [f"driver={state.get('driver', '550.54.15')}"]
    if state.get("initError"):
        lines.append(f"init_error={state['initError']}")
    gpus = state.get("gpus", [])
    lines.append(f"gpu.count={len(gpus)}")
    for i, gpu in enumerate(gpus):
        prefix = f"gpu.{i}."
        lines.append(f"{prefix}uuid={gpu.get('uuid', f'GPU-fake-{i:04d}')}")
        lines.append(f"{prefix}name={gpu.get('name', 'NVIDIA A100-SXM4-80GB')}")
        for key, ckey in _GPU_KEYS.items():
            if key in gpu and key not in ("uuid", "name") and gpu[key] is not None:
                lines.append(f"{prefix}{ckey}={gpu[key]}")
        lines.append(f"{prefix}procutil={_flag(gpu.get('processUtil', True))}")
        lines.append(f"{prefix}mig_capable={_flag(gpu.get('migCapable', False) or gpu.get('mig'))}")
        procs = gpu.get("processes", [])
        lines.append(f"{prefix}proc.count={len(procs)}")
        for j, proc in enumerate(procs):
            lines.extend(f"{prefix}proc.{j}.{ck}={proc[k]}" for k, ck in _PROC_KEYS.items() if k in proc)
        migs = gpu.get("mig", [])
        lines.append(f"{prefix}mig.count={len(migs)}")
        for j, mig in enumerate(migs):
            lines.extend(f"{prefix}mig.{j}.{ck}={mig[k]}" for k, ck in _MIG_KEYS.items() if k in mig)
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"state value contains a newline: {line!r}")
    return "\n".join(lines) + "\n"


def write_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Atomically replace the state file (a new inode each time, so the library always sees the change)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".fakenvml-")
    with os.fdopen(fd, "w") as fh:
        fh.write(render_state(state))
    os.replace(tmp, target)
    return target


def gpu(index: int, **fields: Any) -> dict[str, Any]:
    """A GPU entry with plausible A100 defaults, for tests and the demo."""
    base: dict[str, Any] = {
        "uuid": f"GPU-{index:08x}-0000-4000-8000-{index:012x}",
        "name": "NVIDIA A100-SXM4-80GB",
        "util": 0,
        "memUtil": 0,
        "memTotal": 80 * 1024**3,
        "memUsed": 0,
        "powerMw": 60000,
        "temp": 35,
        "processes": [],
    }
    base.update(fields)
    return base
