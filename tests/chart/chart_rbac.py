"""Run as the chart's operator ServiceAccount instead of admin.

``operator_kubeconfig(...)`` renders the chart's RBAC objects (``helm template``), applies them with
the admin kubeconfig, asks the TokenRequest API for a token of the operator's ServiceAccount
(``kubectl create token``) and writes a kubeconfig that uses that token against the same
apiserver. A scenario that runs the operator with it proves the chart's ClusterRole is enough (and
a 403 in its log names the missing rule).

    from chart_rbac import operator_kubeconfig          # tests/chart on sys.path (pytest does this
    sa = operator_kubeconfig(helm=..., kubectl=..., admin_kubeconfig=cluster.kubeconfig,
                             namespace="gpu-steward", out=tmp_path / "operator.kubeconfig")
    Kube(load_api_client(str(sa.kubeconfig)))
    ...
    sa.remove()                                          # deletes what it applied
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from helmtools import Doc, template

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def _kubectl(kubectl: Path, kubeconfig: str | Path, *args: str, stdin: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def render_rbac(helm: Path, *, namespace: str, release: str = "gpu-steward", sets: Sequence[str] = ()) -> list[Doc]:
    """The chart's ServiceAccounts and RBAC objects, exactly as `helm install` would create them."""
    docs = template(helm, release=release, namespace=namespace, sets=sets,
                    extra=["--show-only", "templates/rbac.yaml", "--show-only", "templates/serviceaccounts.yaml"])
    return [d for d in docs if d["kind"] in RBAC_KINDS]


@dataclass
class OperatorIdentity:
    kubeconfig: Path
    service_account: str
    namespace: str
    username: str  # system:serviceaccount:<ns>:<name>, as the apiserver sees it
    applied: list[Doc] = field(default_factory=list)
    _kubectl: Path | None = None
    _admin: str | Path | None = None

    def remove(self) -> None:
        """Delete the RBAC objects this identity applied (the namespace stays)."""
        if self._kubectl is None or self._admin is None or not self.applied:
            return
        body = yaml.safe_dump_all(self.applied)
        _kubectl(self._kubectl, self._admin, "delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=body)
        self.applied = []


def operator_kubeconfig(*, helm: Path, kubectl: Path, admin_kubeconfig: str | Path, namespace: str, out: Path,
                        release: str = "gpu-steward", sets: Sequence[str] = (),
                        duration: str = "2h") -> OperatorIdentity:
    """Apply the chart's RBAC and write ``out``: a kubeconfig authenticating as the operator's SA."""
    docs = render_rbac(helm, namespace=namespace, release=release, sets=sets)
    accounts = [d for d in docs if d["kind"] == "ServiceAccount" and d.get("automountServiceAccountToken") is not False]
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    subject = binding["subjects"][0]
    assert any(a["metadata"]["name"] == subject["name"] for a in accounts), "the binding names the operator's SA"

    ns = _kubectl(kubectl, admin_kubeconfig, "create", "namespace", namespace, "--dry-run=client", "-o", "yaml").stdout
    _kubectl(kubectl, admin_kubeconfig, "apply", "-f", "-", stdin=ns)
    _kubectl(kubectl, admin_kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    token = _kubectl(kubectl, admin_kubeconfig, "create", "token", subject["name"], "-n", namespace,
                     "--duration", duration).stdout.strip()

    view: dict[str, Any] = json.loads(_kubectl(kubectl, admin_kubeconfig, "config", "view", "--raw", "--minify",
                                               "--flatten", "-o", "json").stdout)
    cluster = view["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gpu-steward", "cluster": cluster}],
        "users": [{"name": subject["name"], "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "gpu-steward", "user": subject["name"],
                                                       "namespace": namespace}}],
        "current-context": "operator",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return OperatorIdentity(out, subject["name"], namespace, f"system:serviceaccount:{namespace}:{subject['name']}",
                            docs, kubectl, admin_kubeconfig)


def can_i(kubectl: Path, kubeconfig: str | Path, verb: str, resource: str, *args: str,
          check_auth: bool = True) -> bool:
    """Whether the kubeconfig's user may ``verb`` ``resource``, in `kubectl auth can-i` syntax:
    ``resource`` is ``plural[.group][/name]``; args may hold ``-n NS``, ``-A``, ``--subresource=S``.

    Sent as a SelfSubjectAccessReview with the group spelt out, so it is exact even for API groups
    the server does not serve (`kubectl auth can-i` would drop the group for those and answer no).
    A rejected token raises, unless ``check_auth`` is False, when it counts as no."""
    kind_part, _, name = resource.partition("/")
    plural, _, group = kind_part.partition(".")
    attrs: dict[str, str] = {"verb": verb, "resource": plural, "group": group}
    if name:
        attrs["name"] = name
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-n", "--namespace"):
            attrs["namespace"] = rest.pop(0)
        elif arg.startswith("--subresource="):
            attrs["subresource"] = arg.split("=", 1)[1]
        elif arg not in ("-A", "--all-namespaces"):
            raise ValueError(f"can_i: unsupported argument {arg!r}")
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": attrs}}
    proc = _kubectl(kubectl, kubeconfig, "create", "-f", "-", "-o", "json", stdin=json.dumps(review), check=False)
    if proc.returncode != 0:
        if not check_auth:
            return False
        raise RuntimeError(f"access review {attrs} failed: {proc.stderr.strip()}")
    return bool(json.loads(proc.stdout)["status"].get("allowed"))


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200 (the operator's liveness endpoint, while it starts)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as rsp:
            return bool(rsp.status == 200)
    except OSError:
        return False
