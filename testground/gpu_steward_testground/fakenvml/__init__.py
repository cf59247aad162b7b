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
                        "memTotal": ..., "memUsed": ..., "gpm": {"smActive": 30, ...}}],
               # optional hardware fields: a key left out (or None) makes its NVML call NOT_SUPPORTED
               "memReserved": 0, "pciBusId": "00000000:07:00.0", "smClock": 1410, "memClock": 1593,
               "memTemp": 45, "energyMj": 123456789, "pcieReplay": 0, "encUtil": 0, "decUtil": 0,
               "remappedRows": {"correctable": 0, "uncorrectable": 0, "pending": 0, "failure": 0},
               "nvlink": {"links": 12, "txKiB": 1024, "rxKiB": 2048},     # per link
               "xid": [79],                       # every XID since boot (None: events NOT_SUPPORTED)
               # GPM (Hopper+): None/absent = nvmlGpmQueryDeviceSupport says unsupported; values in percent
               # (as NVML reports them) and PCIe in MiB/s
               "gpm": {"graphicsActive": 90, "smActive": 80, "smOccupancy": 40, "tensorActive": 20,
                       "dramActive": 30, "pcieTxMiBs": 100, "pcieRxMiBs": 200}}]}

`gpu()` gives an A100 (every hardware field, no GPM); `h100()` one with GPM.
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
_HW_KEYS = {
    "memReserved": "mem_reserved",
    "pciBusId": "pci_bus_id",
    "smClock": "sm_clock",
    "memClock": "mem_clock",
    "memTemp": "mem_temp",
    "energyMj": "energy_mj",
    "pcieReplay": "pcie_replay",
    "encUtil": "enc_util",
    "decUtil": "dec_util",
}
_REMAP_KEYS = {"correctable": "remap_corr", "uncorrectable": "remap_unc", "pending": "remap_pending",
               "failure": "remap_failure"}
_GPM_KEYS = {
    "graphicsActive": "gpm_gr",
    "smActive": "gpm_sm",
    "smOccupancy": "gpm_occ",
    "tensorActive": "gpm_tensor",
    "dramActive": "gpm_dram",
    "pcieTxMiBs": "gpm_pcie_tx",
    "pcieRxMiBs": "gpm_pcie_rx",
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
        lines.extend(_hardware_lines(prefix, gpu))
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
            gpm = mig.get("gpm") or {}
            lines.extend(f"{prefix}mig.{j}.{ck}={gpm[k]}" for k, ck in _GPM_KEYS.items() if gpm.get(k) is not None)
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"state value contains a newline: {line!r}")
    return "\n".join(lines) + "\n"


def _hardware_lines(prefix: str, gpu: dict[str, Any]) -> list[str]:
    lines = [f"{prefix}{ck}={gpu[k]}" for k, ck in _HW_KEYS.items() if gpu.get(k) is not None]
    rows = gpu.get("remappedRows")
    if rows is not None:
        lines.extend(f"{prefix}{ck}={rows.get(k, 0)}" for k, ck in _REMAP_KEYS.items())
    link = gpu.get("nvlink")
    if link is not None:
        lines += [f"{prefix}nvlinks={link.get('links', 0)}", f"{prefix}nvlink_tx_kib={link.get('txKiB', 0)}",
                  f"{prefix}nvlink_rx_kib={link.get('rxKiB', 0)}"]
    xids = gpu.get("xid")
    if xids is not None:
        lines += [f"{prefix}xid_capable=1", f"{prefix}xid.count={len(xids)}"]
        lines.extend(f"{prefix}xid.{j}={code}" for j, code in enumerate(xids))
    gpm = gpu.get("gpm")
    if gpm is not None:
        lines.append(f"{prefix}gpm=1")
        lines.extend(f"{prefix}{ck}={gpm[k]}" for k, ck in _GPM_KEYS.items() if gpm.get(k) is not None)
    return lines


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
        "smClock": 1410,
        "memClock": 1593,
        "memTemp": 40,
        "energyMj": 1_000_000_000 + index,
        "pcieReplay": 0,
        "encUtil": 0,
        "decUtil": 0,
        "remappedRows": {"correctable": 0, "uncorrectable": 0, "pending": 0, "failure": 0},
        "nvlink": {"links": 12, "txKiB": 0, "rxKiB": 0},
        "xid": [],
    }
    base.update(fields)
    return base


def h100(index: int, **fields: Any) -> dict[str, Any]:
    """An H100 entry: the A100's fields plus GPM (profiling metrics through NVML), idle by default."""
    gpm = {"graphicsActive": 0.0, "smActive": 0.0, "smOccupancy": 0.0, "tensorActive": 0.0, "dramActive": 0.0,
           "pcieTxMiBs": 0.0, "pcieRxMiBs": 0.0}
    gpm.update(fields.pop("gpm", None) or {})
    base = gpu(index, name="NVIDIA H100 80GB HBM3", smClock=1980, memClock=2619,
               nvlink={"links": 18, "txKiB": 0, "rxKiB": 0}, gpm=gpm)
    base.update(fields)
    return base
