"""certificates: operator — the pair the operator keeps in its Secret: when it is reused, when it is made
again, and replicas racing to make it agree on one."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from gpu_steward.tls import ca_and_serving_cert, usable
from gpu_steward.webhook_certs import ensure_ca_bundle, ensure_secret

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
DNS = ["gs-webhook.gs.svc", "gs-webhook.gs.svc.cluster.local"]


def test_a_fresh_pair_is_usable_for_its_names_only_and_not_near_expiry():
    files = ca_and_serving_cert(DNS, NOW)
    assert usable(files, DNS, NOW)
    assert not usable(files, ["other.gs.svc"], NOW)
    assert not usable(files, DNS, NOW + dt.timedelta(days=340))  # under 30 days left: make a new one
    other = ca_and_serving_cert(DNS, NOW)
    assert not usable({**files, "tls.key": other["tls.key"]}, DNS, NOW)  # key of another certificate
    assert not usable({**files, "ca.crt": other["ca.crt"]}, DNS, NOW)  # signed by another CA
    assert not usable({"ca.crt": b"garbage"}, DNS, NOW)


class Conflict(Exception):
    status = 409


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.race: dict[str, Any] | None = None  # another replica's Secret, written just before our create
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        return self.objects.get((kind, name))

    def create(self, body: dict[str, Any], *, dry_run: bool) -> Any:
        if self.race is not None:
            self.objects[("Secret", body["metadata"]["name"])], self.race = self.race, None
            raise Conflict()
        self.objects[(body["kind"], body["metadata"]["name"])] = {**body, "metadata": {**body["metadata"],
                                                                                       "resourceVersion": "1"}}
        return body

    def replace(self, body: dict[str, Any], *, dry_run: bool) -> Any:
        self.objects[(body["kind"], body["metadata"]["name"])] = body
        return body

    def json_patch(self, api_version: str, kind: str, name: str, namespace: Any, ops: list[dict[str, Any]]) -> Any:
        self.patches.append((kind, ops))


def _secret(files: dict[str, bytes]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "resourceVersion": "7"},
            "data": {k: base64.b64encode(v).decode() for k, v in files.items()}}


def test_a_replica_that_loses_the_race_uses_the_winners_pair():
    kube = FakeKube()
    winner = ca_and_serving_cert(DNS, NOW)
    kube.race = _secret(winner)
    assert ensure_secret(kube, "gs", "tls", DNS, NOW) == winner  # type: ignore[arg-type]
    assert ensure_secret(kube, "gs", "tls", DNS, NOW) == winner  # type: ignore[arg-type]  # reused


def test_an_expiring_pair_is_replaced_conditionally():
    kube = FakeKube()
    old = ca_and_serving_cert(DNS, NOW - dt.timedelta(days=340))
    kube.objects[("Secret", "tls")] = _secret(old)
    new = ensure_secret(kube, "gs", "tls", DNS, NOW)  # type: ignore[arg-type]
    assert new != old and usable(new, DNS, NOW)
    assert kube.objects[("Secret", "tls")]["metadata"]["resourceVersion"] == "7"  # an update of what it read


def test_the_ca_bundle_goes_into_every_webhook_that_lacks_it():
    kube = FakeKube()
    ca = b"-----BEGIN CERTIFICATE-----\n"
    bundle = base64.b64encode(ca).decode()
    kube.objects[("ValidatingWebhookConfiguration", "gs")] = {"webhooks": [
        {"name": "a", "clientConfig": {}}, {"name": "b", "clientConfig": {"caBundle": bundle}}]}
    assert ensure_ca_bundle(kube, "gs", ca) == ["ValidatingWebhookConfiguration"]  # type: ignore[arg-type]
    [(_kind, ops)] = kube.patches
    assert ops == [{"op": "test", "path": "/webhooks/0/name", "value": "a"},
                   {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle}]


def test_a_configuration_that_appears_later_gets_its_ca_bundle():
    import time

    from gpu_steward.webhook_certs import keep_ca_bundle

    kube = FakeKube()
    assert ensure_ca_bundle(kube, "gs", b"ca") == []  # type: ignore[arg-type]  # not there yet (Helm is slower)
    keep_ca_bundle(kube, "gs", b"ca", interval=0.01)  # type: ignore[arg-type]
    kube.objects[("MutatingWebhookConfiguration", "gs")] = {"webhooks": [{"name": "a", "clientConfig": {}}]}
    deadline = time.monotonic() + 5
    while not kube.patches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kube.patches and kube.patches[0][0] == "MutatingWebhookConfiguration"
