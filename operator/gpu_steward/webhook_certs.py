"""``certificates: operator`` (the chart's default): the operator keeps its webhook certificate itself.

The chart renders no key material (two ``helm template`` runs are identical, so GitOps sees no drift):
every replica, before serving admission, reads the Secret ``webhook_cert_secret`` in its namespace;
when it is missing, unreadable, not for the webhook Service's names or within 30 days of expiry, the
replica makes a new CA and serving pair (``tls.ca_and_serving_cert``) and writes it — ``create`` when
there is none (409: another replica won, its pair is used), else an update conditional on the
``resourceVersion`` it read (409: read again). So all replicas serve the same pair. The CA then goes
into the ``caBundle`` of every webhook of the chart's two webhook configurations (a JSON patch per
configuration, only where it differs); configurations not there yet (a first install, the operator
faster than Helm) are patched on the next start or by ``ensure_ca_bundle`` when the loop retries.
A rotation happens on a restart (the pair is checked at start): a new pair, then the new caBundle.
"""

from __future__ import annotations

import base64
import datetime as dt
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from gpu_steward.kube import Kube
from gpu_steward.tls import ca_and_serving_cert, usable

log = structlog.get_logger(__name__)

KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
ADMISSION = "admissionregistration.k8s.io/v1"


def _files(secret: dict[str, Any] | None) -> dict[str, bytes]:
    data = (secret or {}).get("data") or {}
    out = {}
    for key in ("ca.crt", "tls.crt", "tls.key"):
        try:
            out[key] = base64.b64decode(data[key])
        except (KeyError, ValueError, TypeError):
            continue
    return out


def _conflict(exc: Exception) -> bool:
    return isinstance(exc, ConflictError) or getattr(exc, "status", None) == 409


def ensure_secret(kube: Kube, namespace: str, name: str, dns_names: Sequence[str], now: dt.datetime,
                  labels: dict[str, str] | None = None, attempts: int = 5) -> dict[str, bytes]:
    """The usable pair in Secret ``namespace/name``, made and written first when needed."""
    for _ in range(attempts):
        current = kube.get("v1", "Secret", name, namespace)
        files = _files(current)
        if usable(files, dns_names, now):
            return files
        fresh = ca_and_serving_cert(dns_names, now)
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "data": {k: base64.b64encode(v).decode() for k, v in fresh.items()},
        }
        try:
            if current is None:
                kube.create(body, dry_run=False)
                log.info("webhook certificate created", secret=f"{namespace}/{name}")
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                body["metadata"]["labels"] = {**((current["metadata"].get("labels")) or {}), **(labels or {})}
                kube.replace(body, dry_run=False)
                log.info("webhook certificate replaced", secret=f"{namespace}/{name}",
                         why="missing, unreadable, for other names or close to expiry")
            return fresh
        except Exception as exc:
            if not _conflict(exc):
                raise
            log.info("webhook certificate written by another replica; reading it", secret=f"{namespace}/{name}")
    raise RuntimeError(f"webhook certificate Secret {namespace}/{name}: no stable version after {attempts} tries")


def ensure_ca_bundle(kube: Kube, configuration: str, ca_pem: bytes) -> list[str]:
    """Put the CA into every webhook of the two configurations named ``configuration``; returns what was
    patched. A configuration that is not there yet is skipped (logged)."""
    bundle = base64.b64encode(ca_pem).decode()
    patched = []
    for kind in KINDS:
        try:
            cfg = kube.get(ADMISSION, kind, configuration)
        except NotFoundError:
            cfg = None
        if cfg is None:
            log.info("webhook configuration not there yet; caBundle set when it appears", kind=kind,
                     name=configuration)
            continue
        ops: list[dict[str, Any]] = []
        for i, hook in enumerate(cfg.get("webhooks") or []):
            if (hook.get("clientConfig") or {}).get("caBundle") != bundle:
                ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook["name"]})
                ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle})
        if not ops:
            continue
        try:
            kube.json_patch(ADMISSION, kind, configuration, None, ops)
        except ApiException as exc:  # a concurrent edit reordered the webhooks: the next start fixes it
            log.warning("caBundle not patched", kind=kind, name=configuration, status=exc.status)
            continue
        patched.append(kind)
        log.info("webhook caBundle set", kind=kind, name=configuration, webhooks=len(ops) // 2)
    return patched


def keep_ca_bundle(kube: Kube, configuration: str, ca_pem: bytes, interval: float = 60.0) -> threading.Thread:
    """Re-check the caBundle every ``interval`` seconds for the life of the process (daemon thread)."""
    def loop() -> None:
        while True:
            threading.Event().wait(interval)
            try:
                ensure_ca_bundle(kube, configuration, ca_pem)
            except Exception as exc:  # an API hiccup: the next round tries again
                log.warning("caBundle check failed", name=configuration, error=str(exc))

    thread = threading.Thread(target=loop, name="webhook-ca-bundle", daemon=True)
    thread.start()
    return thread


def prepare(kube: Kube, *, namespace: str, secret: str, service: str, configuration: str | None,
            now: dt.datetime, labels: dict[str, str] | None = None, keep: bool = False) -> Path:
    """Everything a replica does before serving admission: the pair (ensured), its files in a private
    directory for kopf's server, the caBundle (when the chart names the configurations; ``keep``: and
    kept there)."""
    dns = [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local", service,
           f"{service}.{namespace}"]
    files = ensure_secret(kube, namespace, secret, dns, now, labels)
    directory = Path(tempfile.mkdtemp(prefix="gpu-steward-webhook-"))
    for key, value in files.items():
        (directory / key).write_bytes(value)
        (directory / key).chmod(0o600)
    if configuration:
        ensure_ca_bundle(kube, configuration, files["ca.crt"])
        if keep:
            keep_ca_bundle(kube, configuration, files["ca.crt"])
    return directory


__all__ = ["ensure_ca_bundle", "ensure_secret", "keep_ca_bundle", "prepare"]
