"""Agent benchmark: CPU time per sampling round and resident memory at 1 Hz, 8 GPUs and 16 processes.

Goal (issue 4, 15): at most 0.5 % of one core and 45 MB RSS with every field on. Nothing here asserts the
goal; it prints numbers.

    python bench/agent_bench.py [--seconds 30] [--gpus 8] [--procs 16] [--basic]

By default every GPU is an H100 on the fake NVML with every dcgm-exporter field and GPM (profiling
figures, idle signals) answering; --basic uses GPUs that answer only what the agent read before issue 15
(utilization, memory, power, temperature), for a before/after comparison.

The parent builds the fake NVML library, a fake /proc and a fake kubelet (real pod-resources gRPC API on a
unix socket) and scrapes the agent like Prometheus and the operator would (/metrics, /v1/summary every
15 s). The agent runs in a child process that measures itself (time.process_time covers all its threads,
VmRSS/VmHWM from /proc/self/status) so the fakes' own costs stay out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures
from pathlib import Path


def vm(field: str) -> int:
    """A /proc/self/status memory figure in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


# --- child: the agent, measuring itself ----------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    from gpu_steward_agent import logs
    from gpu_steward_agent.agent import Agent
    from gpu_steward_agent.config import from_env
    from gpu_steward_agent.metrics import AgentMetrics
    from gpu_steward_agent.server import AgentHTTPServer

    config = from_env()
    logs.configure(config.log_format, config.log_level)  # to stderr: stdout carries the results
    agent = Agent(config)
    metrics = AgentMetrics(agent)
    server = AgentHTTPServer(("127.0.0.1", 0), agent, metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rss_after_import = vm("VmRSS")

    # 1. Back-to-back rounds: CPU per round. Sample times walk up to "now" so the 300 s window is full
    #    (as it is in steady state) when the real-time phase starts.
    rounds = args.tight_rounds
    start_ts = time.time() - rounds
    cpu0 = time.process_time()
    for i in range(rounds):
        agent.sample_once(start_ts + i)
    cpu_per_round = (time.process_time() - cpu0) / rounds

    # 2. Real time at the configured interval (1 Hz) with the HTTP server up and being scraped.
    print(json.dumps({"event": "ready", "port": server.server_address[1]}), flush=True)
    loop = threading.Thread(target=agent.run_forever, daemon=True)
    wall0, cpu0, rounds0 = time.monotonic(), time.process_time(), agent.counters.rounds
    loop.start()
    time.sleep(args.seconds)
    agent.stop()
    loop.join(timeout=10)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    with agent.lock:
        live_rounds = agent.counters.rounds - rounds0
        pods = len(agent.pod_info)
        attributed = agent.attribution_source
    result = {
        "event": "result",
        "gpus": args.gpus,
        "processes": args.procs,
        "pods": pods,
        "attributionSource": attributed,
        "cpuMsPerRoundBackToBack": round(cpu_per_round * 1000, 3),
        "liveSeconds": round(wall, 1),
        "liveRounds": live_rounds,
        "cpuPercentOfOneCoreAt1Hz": round(100 * cpu / wall, 3),
        "cpuMsPerLiveRound": round(1000 * cpu / max(1, live_rounds), 3),
        "rssMB": round(vm("VmRSS") / 1e6, 1),
        "peakRssMB": round(vm("VmHWM") / 1e6, 1),
        "rssMBAfterStartup": round(rss_after_import / 1e6, 1),
        "fields": "basic" if args.basic else "all (H100, GPM)",
        "dcgmSeries": metrics.render().count(b"\nDCGM_FI_"),
        "goal": "<= 0.5 % of one core, <= 45 MB RSS",
    }
    server.shutdown()
    agent.close()
    print(json.dumps(result), flush=True)


# --- parent: fakes and scrapes ---------------------------------------------------------------------------
def fake_kubelet(socket_path: Path, pods: list[tuple[str, str, list[str]]]):  # type: ignore[no-untyped-def]
    import grpc

    from gpu_steward_agent.podresources import api_pb2, api_pb2_grpc

    response = api_pb2.ListPodResourcesResponse(pod_resources=[
        api_pb2.PodResources(name=name, namespace=ns, containers=[api_pb2.ContainerResources(
            name="main", devices=[api_pb2.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=ids)])])
        for ns, name, ids in pods
    ])

    class Lister(api_pb2_grpc.PodResourcesListerServicer):
        def List(self, request, context):  # type: ignore[no-untyped-def]
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(Lister(), server)
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    return server


def parent(args: argparse.Namespace) -> None:
    from gpu_steward_testground import fakenvml

    work = Path(tempfile.mkdtemp(prefix="agentbench-"))
    lib = fakenvml.build(work / "lib")
    gpus, pods, proc_root = [], [], work / "proc"
    per_gpu = max(1, args.procs // args.gpus)
    pid = 1000
    for i in range(args.gpus):
        procs = []
        uid = f"{i:08x}-0000-4000-8000-{i:012x}"
        for _ in range(per_gpu):
            procs.append({"pid": pid, "usedMemory": 4 * 2**30, "smUtil": 30})
            (proc_root / str(pid)).mkdir(parents=True)
            (proc_root / str(pid) / "cgroup").write_text(
                f"0::/kubepods.slice/kubepods-pod{uid.replace('-', '_')}.slice/cri-containerd-{'c' * 64}.scope\n")
            pid += 1
        if args.basic:
            g = fakenvml.gpu(i, util=60, memUtil=20, memUsed=per_gpu * 4 * 2**30, processes=procs, smClock=None,
                             memClock=None, memTemp=None, energyMj=None, pcieReplay=None, encUtil=None, decUtil=None,
                             remappedRows=None, nvlink=None, xid=None)
        else:
            g = fakenvml.h100(i, util=60, memUtil=20, memUsed=per_gpu * 4 * 2**30, processes=procs,
                              gpm={"graphicsActive": 60, "smActive": 45, "smOccupancy": 30, "tensorActive": 20,
                                   "dramActive": 25, "pcieTxMiBs": 100, "pcieRxMiBs": 200})
        gpus.append(g)
        pods.append(("bench", f"trainer-{i}", [g["uuid"]]))
    fakenvml.write_state(work / "state", {"gpus": gpus})
    kubelet = fake_kubelet(work / "kubelet.sock", pods)
    env = {
        **os.environ, "NODE_NAME": "bench-node", "NVML_LIBRARY_PATH": str(lib), "FAKE_NVML_STATE": str(work / "state"),
        "GPU_STEWARD_AGENT_POD_RESOURCES_SOCKET": str(work / "kubelet.sock"),
        "GPU_STEWARD_AGENT_PROC_ROOT": str(proc_root), "GPU_STEWARD_AGENT_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, __file__, "--child", "--seconds", str(args.seconds), "--gpus", str(args.gpus),
           "--procs", str(args.procs), "--tight-rounds", str(args.tight_rounds), *(["--basic"] if args.basic else [])]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    url = f"http://127.0.0.1:{ready['port']}"
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline - 1:  # scrape like Prometheus (15 s) and the operator would
        for path in ("/metrics", "/v1/summary"):
            with urllib.request.urlopen(url + path, timeout=5) as resp:
                resp.read()
        time.sleep(min(15, max(0.0, deadline - time.monotonic() - 1)))
    result = json.loads(proc.stdout.readline())
    proc.wait(timeout=30)
    kubelet.stop(None)
    print(json.dumps(result, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="real-time phase at 1 Hz")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--procs", type=int, default=16)
    ap.add_argument("--tight-rounds", type=int, default=300, help="back-to-back rounds (fills the 300 s window)")
    ap.add_argument("--basic", action="store_true", help="GPUs without the issue-15 fields (before/after)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    (child if args.child else parent)(args)


if __name__ == "__main__":
    main()
