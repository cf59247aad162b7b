"""Run the agent against the real NVML of this machine (a GPU node) and print what it serves and what it costs.

    python bench/real_nvml.py [--rounds 20] [--interval 1] [--library /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1]
                              [--busy-after K]

Needs the NVIDIA driver (libnvidia-ml.so.1) and the agent's dependencies (pip install -e . or the agent
image); no Kubernetes: without a kubelet socket pods are attributed through /proc cgroups, or not at all.
It samples `--rounds` rounds at `--interval`, then prints
  1. /metrics (the DCGM_FI_* series and the agent's own),
  2. /v1/summary,
  3. every dcgm-exporter default-counters field: seen on /metrics, or absent (with the NVML reason the agent
     logged: NOT_SUPPORTED on this GPU, no GPM before Hopper, ...),
  4. the sampling cost: CPU ms per round (all threads), wall ms per round, RSS.
With --busy-after K, rounds K.. run while bench/gpu_load.py keeps GPU 0 busy (CUDA driver API, no toolkit): every
round prints GPU 0's utilization, memory, processes and GPM SM activity, and the end says whether the agent saw the
idle GPU as idle and the busy one as busy, with the load's own pid among the GPU's processes.
Everything is read-only on the GPU (NVML queries, GPM samples, an XID event registration).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--library", default=None, help="NVML library path (default: pynvml's search)")
    ap.add_argument("--socket", default="/var/lib/kubelet/pod-resources/kubelet.sock")
    ap.add_argument("--busy-after", type=int, default=None, help="start a GPU load on GPU 0 after this many rounds")
    args = ap.parse_args()

    from structlog.testing import capture_logs

    from gpu_steward_agent.agent import Agent
    from gpu_steward_agent.config import AgentConfig
    from gpu_steward_agent.fields import DEFAULT_COUNTERS, EXTRA_PROFILING
    from gpu_steward_agent.metrics import AgentMetrics
    from gpu_steward_agent.server import AgentHTTPServer

    config = AgentConfig(
        node_name="real-nvml-check",
        port=0,
        bind="127.0.0.1",
        interval_seconds=args.interval,
        window_seconds=max(60.0, args.rounds * args.interval),
        pod_resources_socket=args.socket,
        nvml_library_path=args.library,
    )
    agent = Agent(config)
    metrics = AgentMetrics(agent)
    server = AgentHTTPServer(("127.0.0.1", 0), agent, metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    durations: list[float] = []
    trace: list[dict] = []
    load: subprocess.Popen[str] | None = None
    load_pid = None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with capture_logs() as logs:
        for i in range(args.rounds):
            if args.busy_after is not None and i == args.busy_after:
                load, load_pid = start_load(args.interval * (args.rounds - i + 2))
            started = time.perf_counter()
            agent.sample_once()
            durations.append(time.perf_counter() - started)
            trace.append(gpu0_line(agent, i, busy=load is not None))
            print(json.dumps(trace[-1]), flush=True)
            if i + 1 < args.rounds:
                time.sleep(max(0.0, args.interval - durations[-1]))
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    if load is not None:
        load.wait(timeout=60)
        print("load: " + (load.stdout.read() if load.stdout else "").strip().replace("\n", " "))
    if not agent.ready():
        print("NVML did not answer: " + json.dumps([e for e in logs if "nvml" in e["event"]], default=str))
        return 1

    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    with urllib.request.urlopen(url + "/v1/summary", timeout=10) as resp:
        summary = json.load(resp)
    print("==== /metrics ====")
    print(text)
    print("==== /v1/summary ====")
    print(json.dumps(summary, indent=2))

    print("==== dcgm-exporter default-counters fields ====")
    unsupported = [
        e
        for e in logs
        if e["event"]
        in (
            "nvml_field_not_supported",
            "nvml_gpm_not_supported",
            "nvml_memory_v2_not_supported",
            "nvml_events_unavailable",
        )
    ]
    for f in DEFAULT_COUNTERS + EXTRA_PROFILING:
        if f.type == "label":
            seen = f'{f.name}="' in text
        else:
            seen = any(line.startswith(f.name + "{") for line in text.splitlines())
        why = "" if seen else (f.unavailable or "not on any GPU here: see the NVML notes below")
        print(f"{f.name:42} {'exported' if seen else 'absent':9} {why}")
    print("NVML notes (logged once each):")
    for e in unsupported:
        print("  " + json.dumps({k: v for k, v in e.items() if k != "log_level"}, default=str))
    errors = dict(agent.counters.nvml_errors)
    if errors:
        print("NVML errors: " + json.dumps({"/".join(k): v for k, v in errors.items()}))

    print("==== sampling cost ====")
    gpus = len(summary.get("gpus", []))
    steady = sorted(durations[1:] or durations)
    print(
        json.dumps(
            {
                "gpus": gpus,
                "rounds": args.rounds,
                "cpuMsPerRound": round(1000 * cpu / args.rounds, 3),
                "cpuPercentOfOneCore": round(100 * cpu / wall, 3),
                "wallMsPerRoundMedian": round(1000 * steady[len(steady) // 2], 3),
                "wallMsPerRoundMax": round(1000 * max(steady), 3),
                "firstRoundMs": round(1000 * durations[0], 3),
                "rssMB": round(rss_mb(), 1),
            },
            indent=2,
        )
    )
    server.shutdown()
    agent.close()
    if args.busy_after is not None:
        return verdict(trace, load_pid)
    return 0


def start_load(seconds: float) -> tuple[subprocess.Popen[str], int | None]:
    """Start bench/gpu_load.py on GPU 0 and wait for its first line (the CUDA context exists then)."""
    load = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gpu_load.py")), "--seconds", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    first = load.stdout.readline() if load.stdout else ""
    print("load: " + first.strip(), flush=True)
    try:
        return load, int(json.loads(first)["pid"])
    except (ValueError, KeyError):
        return load, None


def gpu0_line(agent, round_no: int, busy: bool) -> dict:
    """What the agent read from GPU 0 this round, in the figures its idle decisions use."""
    reading = agent.latest
    gpu = next((g for g in reading.gpus if g.index == 0), None) if reading is not None else None
    if gpu is None:
        return {"round": round_no, "busy": busy, "gpu0": None}
    prof = gpu.prof or {}
    return {
        "round": round_no,
        "busy": busy,
        "ok": gpu.ok,
        "util": gpu.util,
        "memUtil": gpu.mem_util,
        "memUsedMiB": None if gpu.mem_used is None else gpu.mem_used >> 20,
        "smActive": prof.get("DCGM_FI_PROF_SM_ACTIVE"),
        "processes": [
            (p.pid, None if p.used_memory is None else p.used_memory >> 20, p.sm_util) for p in gpu.processes
        ],
    }


def verdict(trace: list[dict], load_pid: int | None) -> int:
    """Idle rounds read ~0 and busy rounds read busy, with the load's process on the GPU: else exit 1."""
    idle = [t for t in trace if not t["busy"] and t.get("util") is not None]
    # the first busy round can straddle the load's start; judge the ones after it
    busy = [t for t in trace if t["busy"] and t.get("util") is not None][1:]
    checks = {
        "idleRoundsRead": len(idle),
        "idleUtilMax": max((t["util"] for t in idle), default=None),
        "busyRoundsRead": len(busy),
        "busyUtilMin": min((t["util"] for t in busy), default=None),
        "busySmActiveMin": min((t["smActive"] for t in busy if t["smActive"] is not None), default=None),
        "loadPidSeenInRounds": sum(1 for t in busy if any(p[0] == load_pid for p in t["processes"])),
    }
    ok = (
        bool(idle)
        and bool(busy)
        and checks["idleUtilMax"] <= 5
        and checks["busyUtilMin"] >= 50
        and checks["loadPidSeenInRounds"] == len(busy)
    )
    checks["verdict"] = "idle read as idle, busy as busy, load attributed" if ok else "MISMATCH"
    print("==== idle vs busy ====")
    print(json.dumps(checks, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
