"""kubectl's conventions for every ``gpu-steward`` / ``kubectl gpu-steward`` command, in one place.

- ``--kubeconfig`` (else ``$KUBECONFIG``, else ``~/.kube/config``, else in-cluster), ``--context``;
- ``-n/--namespace`` defaulting to the namespace of the kubeconfig context in use (kubectl's rule: not
  ``default`` when the context names another), ``-A/--all-namespaces`` where a command lists;
- ``-o table|wide|json|yaml`` rendering (``render_rows``);
- friendly errors: a user-caused failure (no kubeconfig, unknown context, unreachable API server,
  forbidden, not found, a CRD that is not installed) becomes one ``error: ...`` line that says what to
  do, never a traceback; exit code 1 (2 for usage errors, as argparse does).

The flags are accepted before and after the subcommand (``kubectl gpu-steward -n ml top``, ``... top -n
ml``): the top-level copies use ``g_``-prefixed destinations and ``settle`` merges them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
OUTPUTS = ("table", "wide", "json", "yaml")
KUBE_FLAGS = ("namespace", "all_namespaces", "context", "kubeconfig")


class UserError(Exception):
    """A failure the user can fix: printed as ``error: <message>`` (and a hint), no traceback."""

    def __init__(self, message: str, hint: str | None = None, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message, self.hint, self.code = message, hint, code

    def render(self) -> str:
        return f"error: {self.message}" + (f"\n  {self.hint}" if self.hint else "")


# ---- flags -----------------------------------------------------------------------------------
def add_kube_flags(p: argparse.ArgumentParser, *, all_namespaces: bool = False, prefix: str = "") -> None:
    """``--kubeconfig``, ``--context``, ``-n`` (and ``-A`` on listing commands)."""
    default = argparse.SUPPRESS if prefix else None
    p.add_argument("-n", "--namespace", dest=f"{prefix}namespace", default=default, metavar="NS",
                   help="namespace (default: the kubeconfig context's namespace)")
    if all_namespaces or prefix:
        p.add_argument("-A", "--all-namespaces", dest=f"{prefix}all_namespaces", action="store_true",
                       default=default if prefix else False, help="every namespace")
    p.add_argument("--context", dest=f"{prefix}context", default=default, metavar="NAME",
                   help="kubeconfig context to use (default: the current context)")
    p.add_argument("--kubeconfig", dest=f"{prefix}kubeconfig", default=default, metavar="PATH",
                   help="path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")


def add_output_flag(p: argparse.ArgumentParser, choices: Sequence[str] = OUTPUTS, default: str = "table") -> None:
    p.add_argument("-o", "--output", dest="output", choices=list(choices), default=default,
                   help=f"output format: {'|'.join(choices)} (default {default})")


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Merge the top-level copies of the kube flags into the subcommand's (the subcommand's win)."""
    for name in KUBE_FLAGS:
        top = getattr(args, f"g_{name}", None)
        if top not in (None, False) and getattr(args, name, None) in (None, False):
            setattr(args, name, top)
        elif not hasattr(args, name):
            setattr(args, name, top if top is not None else (False if name == "all_namespaces" else None))
    return args


# ---- connection ------------------------------------------------------------------------------
def _kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    if kubeconfig:
        return [kubeconfig]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return [str(Path("~/.kube/config").expanduser())]


def _has_kubeconfig(kubeconfig: str | None) -> bool:
    return any(Path(p).expanduser().is_file() for p in _kubeconfig_paths(kubeconfig))


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(SA_NAMESPACE_FILE).is_file()


def _no_cluster_error(kubeconfig: str | None) -> UserError:
    where = ", ".join(_kubeconfig_paths(kubeconfig))
    return UserError(f"no cluster configured: no kubeconfig at {where}",
                     "point --kubeconfig or $KUBECONFIG at one (kubectl config view shows the one kubectl uses)")


def _context_entry(args: argparse.Namespace) -> dict[str, Any]:
    from kubernetes import config

    contexts, active = _load_contexts(args)
    name = getattr(args, "context", None)
    if name is None:
        if active is None:
            raise UserError("the kubeconfig has no current context",
                            "pick one with --context NAME or `kubectl config use-context NAME`")
        return active  # type: ignore[no-any-return]
    for ctx in contexts:
        if ctx.get("name") == name:
            return ctx  # type: ignore[no-any-return]
    known = ", ".join(sorted(c.get("name", "?") for c in contexts)) or "none"
    raise UserError(f"context {name!r} not found in the kubeconfig (contexts: {known})",
                    "list them with `kubectl config get-contexts`") from config.ConfigException(name)


def _load_contexts(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from kubernetes import config

    kubeconfig = getattr(args, "kubeconfig", None)
    if not _has_kubeconfig(kubeconfig):
        raise _no_cluster_error(kubeconfig)
    try:
        if kubeconfig:
            return config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-any-return,no-untyped-call]
        return config.list_kube_config_contexts()  # type: ignore[no-any-return,no-untyped-call]
    except (config.ConfigException, yaml.YAMLError, OSError) as exc:
        raise UserError(f"cannot read the kubeconfig: {exc}",
                        "check the file (kubectl config view) or pass another with --kubeconfig") from exc


def namespace_of(args: argparse.Namespace) -> str:
    """``-n``, else the kubeconfig context's namespace, else (in a pod) the pod's, else ``default``."""
    if getattr(args, "namespace", None):
        return str(args.namespace)
    if _has_kubeconfig(getattr(args, "kubeconfig", None)) or getattr(args, "context", None):
        ctx = _context_entry(args)
        return str((ctx.get("context") or {}).get("namespace") or "default")
    if _in_cluster():
        return Path(SA_NAMESPACE_FILE).read_text().strip() or "default"
    return "default"


def list_namespace(args: argparse.Namespace) -> str | None:
    """The namespace a listing command reads: None (all) with ``-A``."""
    return None if getattr(args, "all_namespaces", False) else namespace_of(args)


def api_client(args: argparse.Namespace) -> Any:
    from kubernetes import client, config

    kubeconfig, context = getattr(args, "kubeconfig", None), getattr(args, "context", None)
    if not _has_kubeconfig(kubeconfig):
        if kubeconfig is None and context is None and _in_cluster():
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        raise _no_cluster_error(kubeconfig)
    _context_entry(args)  # a friendly error for an unknown context
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context,  # type: ignore[no-untyped-call]
                                client_configuration=cfg)
    except (config.ConfigException, yaml.YAMLError, OSError) as exc:
        raise UserError(f"cannot use the kubeconfig: {exc}",
                        "check it with `kubectl config view --minify`") from exc
    return client.ApiClient(cfg)


def connect(args: argparse.Namespace) -> Any:
    """A ``gpu_steward.kube.Kube`` for the cluster the flags name (errors are ``UserError``)."""
    import logging

    from gpu_steward.kube import Kube

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # no "Retrying ..." lines before the error
    client = api_client(args)
    host = getattr(client.configuration, "host", None)
    client.configuration.retries = 1
    try:
        return Kube(client)
    except Exception as exc:  # discovery runs here: an unreachable or refusing API server shows now
        err = friendly(exc)
        if err is None:
            raise
        if host and "cannot reach" in err.message:
            err.message = f"cannot reach the API server at {host}: {_reason(exc)}"
        raise err from exc


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a connection failure ("Connection refused", a TLS error ...)."""
    inner = getattr(exc, "reason", None)
    text = str(inner or exc)
    for marker in ("] ", ": "):
        if marker in text and ("Errno" in text or "SSL" in text):
            text = text.rsplit(marker, 1)[-1]
    return text.strip(" )\"'")[:200]


# ---- errors ----------------------------------------------------------------------------------
def friendly(exc: BaseException) -> UserError | None:
    """The ``UserError`` for an exception a user can fix, or None for a real bug (then: traceback)."""
    if isinstance(exc, UserError):
        return exc
    try:
        from kubernetes import config
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ResourceNotFoundError
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, ResourceNotFoundError):
        return UserError(f"the cluster does not serve this kind ({_short(exc)}): its CRD is not installed",
                         "install GPU Steward's CRDs (helm install ... charts/gpu-steward, or kubectl apply -f crds/), "
                         "or the project that owns the kind")
    if isinstance(exc, ApiException):
        status = getattr(exc, "status", None)
        reason = _api_message(exc)
        if status == 401:
            return UserError(f"the API server refused your credentials (401 Unauthorized): {reason}",
                             "log in again or refresh the token of your kubeconfig context")
        if status == 403:
            return UserError(f"forbidden: {reason}",
                             "ask your cluster admin for read access (the chart's <release>-view ClusterRole "
                             "gives it); `kubectl auth can-i --list -n <namespace>` shows what you may do")
        if status == 404:
            return UserError(f"not found: {reason}", "check the name and the namespace (-n, or -A to list all)")
        if status is None or status == 0:
            return UserError(f"cannot reach the API server: {reason}",
                             "is the cluster running? `kubectl cluster-info` checks the context in use")
        return UserError(f"the API server answered {status}: {reason}")
    if isinstance(exc, config.ConfigException):
        return UserError(f"kubeconfig: {exc}", "check it with `kubectl config view --minify`")
    if isinstance(exc, Urllib3Error | ConnectionError | TimeoutError):
        return UserError(f"cannot reach the API server: {_short(exc)}",
                         "is the cluster running and the context right? `kubectl cluster-info` checks")
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)[:300]
        except (ValueError, AttributeError, TypeError):
            return str(body)[:300]
    return str(getattr(exc, "reason", "") or _short(exc))


def guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a user-caused failure becomes a friendly message and its exit code."""
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`
        return EXIT_OK
    except Exception as exc:
        err = friendly(exc)
        if err is None:
            raise
        print(err.render(), file=sys.stderr)
        return err.code


# ---- output ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    header: str
    key: str
    wide_only: bool = False


def render_rows(rows: Sequence[dict[str, Any]], columns: Sequence[Column], output: str, *,
                kind: str = "List") -> str:
    """kubectl-style: aligned table (``wide`` adds columns), or ``json``/``yaml`` of all fields."""
    if output == "json":
        return json.dumps({"apiVersion": "v1", "kind": kind, "items": list(rows)}, indent=2, default=str) + "\n"
    if output == "yaml":
        return yaml.safe_dump({"apiVersion": "v1", "kind": kind, "items": [_plain(r) for r in rows]},
                              sort_keys=False)
    cols = [c for c in columns if output == "wide" or not c.wide_only]
    table = [[_cell(r.get(c.key)) for c in cols] for r in rows]
    widths = [max([len(c.header), *(len(t[i]) for t in table)]) for i, c in enumerate(cols)]
    lines = ["   ".join(c.header.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines += ["   ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip() for t in table]
    return "\n".join(lines) + "\n"


def dump(obj: Any, output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=2, default=str) + "\n"
    return yaml.safe_dump(_plain(obj), sort_keys=False)


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "<none>"
    return str(value)
