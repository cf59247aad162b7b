"""The ``gpu-steward`` command line (also the kubectl plugin ``kubectl gpu-steward``): run the operator,
and the owner / platform / finance tools (explain, top, snooze, resume, report, export).

Conventions are kubectl's (``gpu_steward.clikit``): ``-n`` defaults to the kubeconfig context's
namespace, ``-A`` lists every namespace, ``-o table|wide|json|yaml``, ``--context``, ``--kubeconfig``;
exit codes 0 ok, 1 failed, 2 usage; user-caused errors print one line saying what to do.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version

from gpu_steward import clikit

# Commands that other installed distributions add (the test ground adds ``demo``); the images install
# none, so an operator image offers only the product's own commands.
PLUGIN_GROUP = "gpu_steward.commands"
KUBECTL_PROG = "kubectl gpu-steward"


def _version() -> str:
    try:
        return version("gpu-steward")
    except PackageNotFoundError:  # running from a checkout without the distribution installed
        return "0.1.0+unknown"


def build_parser(prog: str = "gpu-steward") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{prog} {_version()}")
    clikit.add_kube_flags(parser, prefix="g_")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from gpu_steward.views.cli import add_view_commands

    add_view_commands(sub)
    from gpu_steward.workloads.cli import add_resume_command, add_snooze_command

    add_snooze_command(sub)
    add_resume_command(sub)
    from gpu_steward.reports.cli import add_report_commands

    add_report_commands(sub)
    comp = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                          description="Load it with: source <(gpu-steward completion bash)  "
                                      "(kubectl plugin: see `kubectl gpu-steward completion --help`).")
    comp.add_argument("shell", choices=["bash", "zsh"])
    comp.set_defaults(func=_completion)
    complete = sub.add_parser("__complete", help=argparse.SUPPRESS)
    complete.add_argument("words", nargs=argparse.REMAINDER)
    complete.set_defaults(func=_complete)
    sub.add_parser("run", help="run the operator against the configured cluster (in its pod)")
    crds = sub.add_parser("crds", help="CRD generation (developers)")
    crds.add_argument("action", choices=["generate", "check"])
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load()(sub)
    # hide __complete from the help's command list
    sub._choices_actions = [a for a in sub._choices_actions if a.dest != "__complete"]
    return parser


def main(argv: list[str] | None = None, prog: str = "gpu-steward") -> int:
    parser = build_parser(prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.print_help()  # bare command: help (the demo is `gpu-steward demo`)
        return clikit.EXIT_OK
    args = clikit.settle(parser.parse_args(argv))  # a usage error exits 2 (argparse)
    if args.command != "run":  # the operator configures its own (JSON) logging from Settings
        from gpu_steward import logs

        logs.configure("console", "WARNING")
    if getattr(args, "func", None) is not None:  # subcommands that register their own handler
        args.prog = prog
        return clikit.guarded(args.func, args)
    if args.command == "run":
        from gpu_steward.handlers.run import run_operator

        return run_operator()
    if args.command == "crds":
        from gpu_steward.api.crdgen import main as crd_main

        return crd_main([args.action])
    parser.print_help()
    return clikit.EXIT_USAGE


def kubectl_main() -> int:
    """``kubectl-gpu_steward``: kubectl runs it for ``kubectl gpu-steward ...``."""
    return main(prog=KUBECTL_PROG)


def kubectl_complete_main() -> int:
    """``kubectl_complete-gpu_steward``: kubectl (>= 1.26) asks it for plugin completions (cobra's protocol:
    candidates, then ``:<directive>``; 4 = no file completion)."""
    words = sys.argv[1:]
    for word in _candidates(build_parser(KUBECTL_PROG), words):
        print(word)
    print(":4")
    return 0


# ---- completion --------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {k: v for k, v in action.choices.items() if not k.startswith("__")}
    return {}


def _candidates(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """Completions for the last of ``words`` (the words typed after the program name)."""
    words = words or [""]
    current, before = words[-1], words[:-1]
    commands = _subparsers(parser)
    command = next((w for w in before if w in commands), None)
    target = commands[command] if command else parser
    if before and before[-1] in ("-o", "--output"):
        action = next((a for a in target._actions if "-o" in a.option_strings), None)
        return [c for c in (action.choices or []) if c.startswith(current)] if action else []  # type: ignore[union-attr]
    if current.startswith("-"):
        flags = [o for a in target._actions for o in a.option_strings if o.startswith("--") or len(o) == 2]
        return sorted(f for f in set(flags) if f.startswith(current))
    if command is None:
        return sorted(c for c in commands if c.startswith(current))
    positional = next((a for a in target._actions if not a.option_strings and a.choices), None)
    if positional is not None:
        return [str(c) for c in positional.choices if str(c).startswith(current)]  # type: ignore[union-attr]
    if command in ("explain", "snooze", "resume") and "/" not in current:
        from gpu_steward.workloads.cli import KINDS

        return sorted(f"{k}/" for k in KINDS if k.startswith(current.lower()))
    return []


def _complete(args: argparse.Namespace) -> int:
    for word in _candidates(build_parser(getattr(args, "prog", "gpu-steward")), list(args.words)):
        print(word)
    return 0


_BASH = """# {prog} completion for bash: source <({prog} completion bash)
_gpu_steward_complete() {{
  local IFS=$'\\n'
  COMPREPLY=( $({cmd} __complete "${{COMP_WORDS[@]:1:COMP_CWORD}}" 2>/dev/null) )
}}
complete -o default -F _gpu_steward_complete {name}
"""

_ZSH = """#compdef {name}
# {prog} completion for zsh: source <({prog} completion zsh)
_gpu_steward_complete() {{
  local -a candidates
  candidates=("${{(@f)$({cmd} __complete "${{(@)words[2,$CURRENT]}}" 2>/dev/null)}}")
  compadd -- $candidates
}}
compdef _gpu_steward_complete {name}
"""


def _completion(args: argparse.Namespace) -> int:
    prog = getattr(args, "prog", "gpu-steward")
    # As a kubectl plugin, kubectl completes `kubectl gpu-steward ...` itself through the
    # kubectl_complete-gpu_steward executable; this script completes the plain command.
    name, cmd = "gpu-steward", "gpu-steward"
    if prog == KUBECTL_PROG:
        name, cmd = "kubectl-gpu_steward", "kubectl-gpu_steward"
    template = _BASH if args.shell == "bash" else _ZSH
    sys.stdout.write(template.format(prog=prog, name=name, cmd=cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
