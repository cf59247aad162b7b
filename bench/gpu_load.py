"""Keep one GPU busy for a while through the CUDA driver API alone (ctypes, no toolkit), for bench/real_nvml.py.

    python bench/gpu_load.py [--seconds 20] [--device 0] [--mib 256]

A real GPU node has libcuda.so.1 with its driver, and nothing else is needed: the script JIT-compiles a tiny PTX
spin kernel and launches it back to back, with a device buffer of --mib held so the process shows memory used.
That gives NVML a compute process (pid, memory) and kernel time (utilization) to report, which is what the
agent's busy-GPU path reads. It prints one JSON line when the load starts (pid, device) and one when it ends.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time

# A kernel that counts to n and stores the count, so the loop has a side effect and is not compiled away.
SPIN_PTX = b"""
.version 7.0
.target sm_70
.address_size 64
.visible .entry spin(.param .u64 out, .param .u64 n)
{
    .reg .u64 %rd<5>;
    .reg .pred %p;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [n];
    mov.u64 %rd3, 0;
LOOP:
    add.u64 %rd3, %rd3, 1;
    setp.lt.u64 %p, %rd3, %rd2;
    @%p bra LOOP;
    cvta.to.global.u64 %rd4, %rd1;
    st.global.u64 [%rd4], %rd3;
    ret;
}
\x00"""


def check(rc: int, call: str) -> None:
    if rc != 0:
        raise RuntimeError(f"{call} failed with CUDA error {rc}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()

    cuda = ctypes.CDLL("libcuda.so.1")
    check(cuda.cuInit(0), "cuInit")
    dev = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(dev), args.device), "cuDeviceGet")
    ctx = ctypes.c_void_p()
    check(cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev), "cuCtxCreate")
    buf = ctypes.c_uint64()
    check(cuda.cuMemAlloc_v2(ctypes.byref(buf), ctypes.c_size_t(args.mib << 20)), "cuMemAlloc")
    module = ctypes.c_void_p()
    check(cuda.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(SPIN_PTX)), "cuModuleLoadData")
    fn = ctypes.c_void_p()
    check(cuda.cuModuleGetFunction(ctypes.byref(fn), module, b"spin"), "cuModuleGetFunction")

    out = ctypes.c_uint64(buf.value)
    n = ctypes.c_uint64(20_000_000)  # a few ms per launch on one thread: short enough to stop on time
    params = (ctypes.c_void_p * 2)(
        ctypes.cast(ctypes.byref(out), ctypes.c_void_p), ctypes.cast(ctypes.byref(n), ctypes.c_void_p)
    )
    print(json.dumps({"load": "started", "pid": os.getpid(), "device": args.device, "mib": args.mib}), flush=True)
    launches = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        # 132 blocks of 128 threads: at least one block per SM on the GPUs this runs on, so SM activity shows too
        check(cuda.cuLaunchKernel(fn, 132, 1, 1, 128, 1, 1, 0, None, params, None), "cuLaunchKernel")
        check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
        launches += 1
    cuda.cuMemFree_v2(buf)
    cuda.cuCtxDestroy_v2(ctx)
    print(json.dumps({"load": "ended", "pid": os.getpid(), "launches": launches}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
