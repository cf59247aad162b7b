"""Utilization from the node agents (the default source): GET ``<agent>/v1/summary`` on every node at once.

Each agent serves ``{"apiVersion": "gpusteward.dev/agent-v1", "node", "generatedAt", "windowSeconds",
"pods": [{namespace, name, uid, container, gpus, util: {mean, max}, samples, utilSamples, lastSampleAt,
shared, status, signals: {GraphicsActive|SMActive|TensorActive: {mean, max, samples, lastSampleAt,
coveredSeconds}}}], ...}`` (agent/gpu_steward_agent/summary.py). One entry per GPU-holding container; the
pod's usage is the merge of its containers.

Requests run in parallel with a per-request timeout: a slow or dead agent delays nothing but its own
answer and makes only the pods on its node ``unknown``. A pod is ``unknown`` when its agent did not
answer, answered another apiVersion, does not list the pod, lists it with ``status: unknown``, a null
``util`` (e.g. a shared GPU whose use cannot be split), or a ``lastSampleAt`` older than ``max_age``.

Endpoints: the caller passes ``AgentEndpoint(node, url)`` per node (``endpoints_from_pods`` builds them
from the agent DaemonSet's pods); ``url_override`` (settings.agent_url_override) sends every node's
question to one agent, for local runs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog

from gpu_steward.policy.timeparse import TimeParseError, as_utc, parse_rfc3339
from gpu_steward.policy.usage import Usage, merge_usages, with_signals
from gpu_steward.sources.base import PodRef

log = structlog.get_logger(__name__)

API_VERSION = "gpusteward.dev/agent-v1"
SUMMARY_PATH = "/v1/summary"


@dataclass(frozen=True)
class AgentEndpoint:
    node: str
    url: str  # base URL, e.g. http://10.0.3.7:9400


def endpoints_from_pods(agent_pods: Sequence[Mapping[str, Any]], port: int) -> list[AgentEndpoint]:
    """Agent DaemonSet pods (as dicts from the API) → one endpoint per node, ready pods only."""
    out: dict[str, AgentEndpoint] = {}
    for pod in agent_pods:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node, ip = spec.get("nodeName"), status.get("podIP")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if node and ip and ready and status.get("phase") == "Running":
            host = f"[{ip}]" if ":" in ip else ip
            out[node] = AgentEndpoint(node=node, url=f"http://{host}:{port}")
    return sorted(out.values(), key=lambda e: e.node)


@dataclass(frozen=True)
class SummaryResult:
    url: str
    body: dict[str, Any] | None
    error: str | None


def _entry_usage(entry: Mapping[str, Any], window: float, now: datetime, max_age: timedelta) -> Usage:
    """The GPUUtil usage, with the GPM signals the agent reports for the pod (only where its GPUs give them)."""
    signals = {}
    raw = entry.get("signals")
    if isinstance(raw, Mapping):
        for name, stats in raw.items():
            if isinstance(stats, Mapping):
                signals[str(name)] = _stats_usage(entry, stats, stats.get("samples"), window, now, max_age)
    return with_signals(_stats_usage(entry, entry.get("util") or {}, entry.get("utilSamples", entry.get("samples")),
                                     window, now, max_age), signals)


def _stats_usage(entry: Mapping[str, Any], util: Mapping[str, Any], samples: Any, window: float, now: datetime,
                 max_age: timedelta) -> Usage:
    if entry.get("status") != "ok":
        return Usage.unknown("agent reports the pod's utilization as unknown")
    if not isinstance(util, Mapping):
        return Usage.unknown("agent summary has no utilization figures")
    mean, peak = util.get("mean"), util.get("max")
    if not isinstance(mean, int | float) or isinstance(mean, bool):
        why = "shared GPU: utilization cannot be attributed" if entry.get("shared") else "no utilization samples"
        return Usage.unknown(why)
    raw_last = util.get("lastSampleAt", entry.get("lastSampleAt"))
    try:
        last = parse_rfc3339(raw_last) if isinstance(raw_last, str) else None
    except TimeParseError:
        last = None
    if last is None:
        return Usage.unknown("agent summary has no valid lastSampleAt")
    count = int(samples) if isinstance(samples, int) and not isinstance(samples, bool) else 0
    # The span the samples actually cover, never the agent's configured window: after an agent restart or
    # an NVML error the window holds less than it is long. An agent that does not say covers no span.
    covered = util.get("coveredSeconds", entry.get("coveredSeconds"))
    span = min(window, float(covered)) if isinstance(covered, int | float) and not isinstance(covered, bool) else 0.0
    usage = Usage.ok(float(mean), float(peak) if isinstance(peak, int | float) else None, count, last, max(span, 0.0))
    problem = usage.usable(now, max_age)
    return Usage.unknown(problem) if problem else usage


class AgentsSource:
    def __init__(
        self,
        endpoints: Sequence[AgentEndpoint] = (),
        *,
        timeout_seconds: float = 2.0,
        max_age_seconds: float = 180.0,
        url_override: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_age = timedelta(seconds=max_age_seconds)
        self.url_override = url_override.rstrip("/") if url_override else None
        self._session = session
        self._own_session = session is None

    @classmethod
    def from_settings(cls, settings: Any, endpoints: Sequence[AgentEndpoint] = ()) -> AgentsSource:
        return cls(
            endpoints,
            timeout_seconds=settings.agent_timeout_seconds,
            max_age_seconds=settings.sample_max_age_seconds,
            url_override=settings.agent_url_override,
        )

    def set_endpoints(self, endpoints: Sequence[AgentEndpoint]) -> None:
        """Replace the endpoint list (the caller refreshes it from the agent pods' index)."""
        self.endpoints = list(endpoints)

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._own_session = True
        return self._session

    async def _summary(self, url: str) -> SummaryResult:
        try:
            async with self._http().get(url + SUMMARY_PATH, timeout=self.timeout) as resp:
                if resp.status != 200:
                    return SummaryResult(url, None, f"agent {url} answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except TimeoutError:
            return SummaryResult(url, None, f"agent {url} timed out")
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            return SummaryResult(url, None, f"agent {url} unreachable: {type(exc).__name__}")
        if not isinstance(body, dict) or body.get("apiVersion") != API_VERSION:
            got = body.get("apiVersion") if isinstance(body, dict) else type(body).__name__
            return SummaryResult(url, None, f"agent {url} speaks {got!r}, expected {API_VERSION}")
        return SummaryResult(url, body, None)

    def _url_for(self, node: str | None) -> str | None:
        if self.url_override:
            return self.url_override
        for e in self.endpoints:
            if e.node == node:
                return e.url.rstrip("/")
        return None

    async def fetch(self, pods: Sequence[PodRef], now: datetime, signals: Collection[str] = ()) -> dict[str, Usage]:
        """Usage per pod UID for every pod asked about (see the module doc for when it is unknown); the GPM
        signals ride along whenever the agent has them (one summary carries all, ``signals`` changes nothing)."""
        now = as_utc(now)
        by_url: dict[str, list[PodRef]] = defaultdict(list)
        result: dict[str, Usage] = {}
        no_agent: dict[str | None, Usage] = {}  # one (immutable) answer per node, not one per pod
        for pod in pods:
            url = self._url_for(pod.node)
            if url is None:
                if pod.node not in no_agent:
                    no_agent[pod.node] = Usage.unknown(f"no agent on node {pod.node or '(unscheduled)'}")
                result[pod.uid] = no_agent[pod.node]
            else:
                by_url[url].append(pod)
        answers = await asyncio.gather(*(self._summary(url) for url in by_url))
        for answer in answers:
            asked = by_url[answer.url]
            if answer.body is None:
                log.warning("agent summary unavailable", error=answer.error, pods=len(asked))
                unavailable = Usage.unknown(answer.error or "agent unavailable")
                for pod in asked:
                    result[pod.uid] = unavailable
                continue
            result.update(self._usages(answer.body, asked, now))
        return result

    def _usages(self, body: Mapping[str, Any], pods: Sequence[PodRef], now: datetime) -> dict[str, Usage]:
        window = body.get("windowSeconds")
        window_s = float(window) if isinstance(window, int | float) and not isinstance(window, bool) else 0.0
        by_uid: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        by_name: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for entry in body.get("pods") or []:
            if not isinstance(entry, Mapping):
                continue
            if entry.get("uid"):
                by_uid[str(entry["uid"])].append(entry)
            elif entry.get("namespace") and entry.get("name"):  # attribution that could not learn the UID
                by_name[(str(entry["namespace"]), str(entry["name"]))].append(entry)
        out: dict[str, Usage] = {}
        for pod in pods:
            entries = by_uid.get(pod.uid) or by_name.get((pod.namespace, pod.name)) or []
            if not entries:
                out[pod.uid] = Usage.unknown(f"pod not in the summary of node {body.get('node')!r}")
                continue
            out[pod.uid] = merge_usages([_entry_usage(e, window_s, now, self.max_age) for e in entries])
        return out
