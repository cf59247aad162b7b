"""The ``gpu-steward`` command line: run the operator, the local demo, and the owner/finance tools."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

# Commands that other installed distributions add (the test ground adds ``demo``); the images install
# none, so an operator image offers only the product's own commands.
PLUGIN_GROUP = "gpu_steward.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpu-steward", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the operator against the configured cluster")
    crds = sub.add_parser("crds", help="CRD generation")
    crds.add_argument("action", choices=["generate", "check"])
    from gpu_steward.workloads.cli import add_resume_command, add_snooze_command

    add_resume_command(sub)
    add_snooze_command(sub)
    from gpu_steward.reports.cli import add_report_commands

    add_report_commands(sub)
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # The README's first command: with no cluster configured, the demo is the main job (where the
        # test ground that provides it is installed; elsewhere, e.g. in the operator image, print help).
        if "demo" not in {p.name for p in entry_points(group=PLUGIN_GROUP)}:
            parser.print_help()
            return 2
        args = parser.parse_args(["demo"])
    if args.command != "run":  # the operator configures its own (JSON) logging from Settings
        from gpu_steward import logs

        logs.configure("console", "WARNING")
    if getattr(args, "func", None) is not None:  # subcommands that register their own handler
        return int(args.func(args))
    if args.command == "run":
        from gpu_steward.handlers.run import run_operator

        return run_operator()
    if args.command == "crds":
        from gpu_steward.api.crdgen import main as crd_main

        return crd_main([args.action])
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
