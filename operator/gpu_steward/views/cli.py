"""Registers ``explain`` and ``top`` on the top-level parser (cli.py calls ``add_view_commands``)."""

from __future__ import annotations

import argparse
from typing import Any

from gpu_steward import clikit


def add_view_commands(sub: Any) -> None:
    from gpu_steward.views.explain import run_explain
    from gpu_steward.views.top import run_top

    ex = sub.add_parser(
        "explain",
        help="one workload's story: policy and why, utilization, idle since, notices, what is due, cost",
        description="Explains what GPU Steward knows about a workload, from the operator's own records and Events.",
        epilog="examples:\n  gpu-steward explain job/train\n"
               "  kubectl gpu-steward explain notebook/lin-nb -n ml -o yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("target", metavar="KIND/NAME", help="e.g. job/train, notebook/alice-nb, sts/db")
    clikit.add_kube_flags(ex)
    clikit.add_output_flag(ex, ("table", "json", "yaml"))
    ex.add_argument("--platform-namespace", default=None, metavar="NS",
                    help="the operator's namespace, whose IdlePolicies may select others (default gpu-steward)")
    ex.set_defaults(func=run_explain)
    top = sub.add_parser(
        "top", help="GPU workloads now: GPUs, utilization, idle for, state, cost per hour (money on fire first)",
        epilog="examples:\n  gpu-steward top\n  kubectl gpu-steward top -A -o wide",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    clikit.add_kube_flags(top, all_namespaces=True)
    clikit.add_output_flag(top)
    top.set_defaults(func=run_top)
