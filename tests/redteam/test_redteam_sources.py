"""Attempts on the data the idle engine trusts and on the credentials settings carry:

- a spoofed Prometheus (someone on the path, a look-alike Service) answers "0 % utilization" so that
  workloads look idle: refused, because the certificate is verified (CA bundle or system CAs; there is
  no switch to turn verification off) — every pod stays *unknown*, never idle;
- a Prometheus that wants a bearer token gets it from a file (a mounted Secret), re-read each time;
- credentials in settings (``user:password@`` in a URL, a token in a query string, Slack secrets)
  never reach the log of the settings;
- anyone in the cluster reaching the agents' port: the chart's NetworkPolicy admits only the operator
  and the configured Prometheus (tests/chart/test_networkpolicy.py checks the rendering).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import structlog

from gpu_steward.settings import Settings, redact_url
from gpu_steward.sources.base import PodRef
from gpu_steward.sources.prometheus import PrometheusSource
from gpu_steward.tls import self_signed

POD = PodRef("ml", "train-0", "uid-1", "n1")


@pytest.fixture(autouse=True)
def _plain_logging() -> None:
    """A test before this one may have configured structlog onto its own (now closed) captured stream."""
    structlog.reset_defaults()


class FakePrometheus(BaseHTTPRequestHandler):
    """Answers every instant query with one fresh series for POD at 0 % (the spoofer's answer)."""

    seen_auth: list[str | None] = []

    def do_GET(self) -> None:
        FakePrometheus.seen_auth.append(self.headers.get("Authorization"))
        now = time.time()
        query = unquote_plus(self.path)
        value = str(now) if "timestamp(" in query else "5" if "count_over_time" in query else "0"
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"namespace": POD.namespace, "pod": POD.name}, "value": [now, value]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = self_signed(tmp_path / "tls", ["127.0.0.1"], dt.datetime.now(dt.UTC))
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakePrometheus.seen_auth = []
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()


@pytest.mark.redteam("sources")
async def test_unverified_prometheus_cannot_make_pods_idle(https_prometheus):
    url, _ = https_prometheus
    usage = await PrometheusSource(url, timeout_seconds=2).fetch([POD], dt.datetime.now(dt.UTC))
    assert usage[POD.uid].status == "unknown", usage  # not idle: the certificate is not trusted
    assert FakePrometheus.seen_auth == []  # no request ever completed the handshake


async def test_prometheus_with_the_configured_ca_and_token(https_prometheus, tmp_path):
    url, cert = https_prometheus
    token = tmp_path / "token"
    token.write_text("s3cret-1\n")
    settings = Settings(utilization_source="prometheus", prometheus_url=url, prometheus_ca_file=str(cert),
                        prometheus_bearer_token_file=str(token))
    source = PrometheusSource.from_settings(settings, timeout_seconds=2)
    usage = await source.fetch([POD], dt.datetime.now(dt.UTC))
    assert usage[POD.uid].status != "unknown", usage
    assert set(FakePrometheus.seen_auth) == {"Bearer s3cret-1"}
    token.write_text("s3cret-2")  # rotated
    await source.fetch([POD], dt.datetime.now(dt.UTC))
    assert FakePrometheus.seen_auth[-1] == "Bearer s3cret-2"


@pytest.mark.redteam("sources")
def test_settings_log_carries_no_credentials():
    s = Settings(prometheus_url="https://scraper:hunter2@prom.example:9090/prom?token=abc&step=1",
                 agent_url_override="http://u:pw@127.0.0.1:9400",
                 agent_endpoints={"n1": "http://admin:pw@10.0.0.1:9400"},
                 slack_webhook_url="https://hooks.slack.com/services/T/B/XYZ",
                 slack_bot_token="xoxb-1", slack_signing_secret="sign", slack_api_url="https://bot:xoxb-2@slack.example/api/")
    logged = json.dumps(s.redacted())
    for secret in ("hunter2", "scraper", "token=abc", "pw@", "XYZ", "xoxb-1", "xoxb-2", "sign\""):
        assert secret not in logged, secret
    assert "prom.example:9090/prom" in logged and "step=1" in logged  # still useful


def test_redact_url_leaves_plain_text_alone():
    assert redact_url("gpu-steward") == "gpu-steward"
    assert redact_url("http://prom:9090") == "http://prom:9090"
    assert redact_url("app.kubernetes.io/component=agent") == "app.kubernetes.io/component=agent"


# ---- the agents: who counts as one, and what one may say ------------------------------------------


class _Kube:
    def __init__(self, pods_by_ns: dict[str, list[dict]]) -> None:
        self.pods_by_ns = pods_by_ns
        self.asked: list[tuple[str | None, str | None]] = []

    def list(self, api_version, kind, namespace=None, label_selector=None):
        self.asked.append((namespace, label_selector))
        return self.pods_by_ns.get(namespace or "", [])


def _agent_pod(ns: str, node: str, ip: str) -> dict:
    return {"metadata": {"namespace": ns, "name": f"agent-{node}",
                         "labels": {"app.kubernetes.io/component": "agent"}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.mark.redteam("sources")
def test_a_look_alike_agent_pod_in_a_team_namespace_is_never_asked():
    from gpu_steward.sources.factory import DiscoveringAgentsSource

    settings = Settings()
    kube = _Kube({settings.agent_namespace: [_agent_pod(settings.agent_namespace, "n1", "10.0.0.1")],
                  "team-a": [_agent_pod("team-a", "n1", "10.9.9.9"), _agent_pod("team-a", "n2", "10.9.9.8")]})
    source = DiscoveringAgentsSource(kube, settings)  # type: ignore[arg-type]
    endpoints = source._endpoints()
    assert [(e.node, e.url) for e in endpoints] == [("n1", f"http://10.0.0.1:{settings.agent_port}")]
    assert {ns for ns, _ in kube.asked} == {settings.agent_namespace}


async def _fetch_with(summaries: dict[str, dict], pods: list[PodRef], now: dt.datetime):
    from gpu_steward.sources.agents import AgentEndpoint, AgentsSource, SummaryResult

    source = AgentsSource([AgentEndpoint("n1", "http://a1"), AgentEndpoint("n2", "http://a2")])

    async def summary(url: str) -> SummaryResult:
        return SummaryResult(url, summaries.get(url), None if url in summaries else "down")

    source._summary = summary  # type: ignore[method-assign]
    try:
        return await source.fetch(pods, now)
    finally:
        await source.close()


def _entry(pod: PodRef, mean: object, now: dt.datetime) -> dict:
    return {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid, "status": "ok", "gpus": 1,
            "util": {"mean": mean, "max": mean, "lastSampleAt": now.isoformat().replace("+00:00", "Z"),
                     "coveredSeconds": 300}, "samples": 30}


@pytest.mark.redteam("sources")
async def test_one_nodes_agent_cannot_speak_for_pods_on_another_node():
    # The agent of n1 (compromised, or confused) reports bob's pod on n2 as idle; n2's agent is down.
    now = dt.datetime.now(dt.UTC)
    bobs = PodRef("ml", "bob-0", "uid-bob", "n2")
    body = {"node": "n1", "windowSeconds": 300, "pods": [_entry(bobs, 0.0, now)]}
    usage = await _fetch_with({"http://a1": body}, [bobs], now)
    assert usage[bobs.uid].status == "unknown"


@pytest.mark.redteam("sources")
@pytest.mark.parametrize("mean", [-50.0, float("nan"), float("-inf"), "0", True])
async def test_an_impossible_reading_is_not_idle(mean):
    now = dt.datetime.now(dt.UTC)
    body = {"node": "n1", "windowSeconds": 300, "pods": [_entry(POD, mean, now)]}
    usage = await _fetch_with({"http://a1": body}, [POD], now)
    assert usage[POD.uid].status == "unknown", usage
