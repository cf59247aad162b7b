"""Utilization from Prometheus (DCGM exporter metrics), through prometheus-api-client.

Per pod over the last ``window_seconds``:
    mean  = avg by (namespace, pod) (avg_over_time(M{pod!=""}[w]))
    max   = max by (namespace, pod) (max_over_time(M{pod!=""}[w]))
    count = sum by (namespace, pod) (count_over_time(M{pod!=""}[w]))
    last  = max by (namespace, pod) (timestamp(M{pod!=""}))
with M = ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (a 0..1 ratio, times 100 for percent); pods it has nothing for are
asked again with ``DCGM_FI_DEV_GPU_UTIL`` (already percent), which every dcgm-exporter (and our agent)
publishes. One query set for all pods, filtered here: no giant regex of pod names.
The idle signals a policy may choose instead are asked for only when some policy does (``signals``):
GraphicsActive = DCGM_FI_PROF_GR_ENGINE_ACTIVE, SMActive = DCGM_FI_PROF_SM_ACTIVE, TensorActive =
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE (ratios, times 100); a pod without the series has no such signal (its GPUs
or its exporter cannot give it) and is judged on GPUUtil by the caller.
Label names are configurable (``exported_pod``/``exported_namespace`` when Prometheus renamed them: a
ServiceMonitor without ``honorLabels`` on dcgm-exporter's own pod/namespace labels).
Any error (connection, HTTP, bad answer) makes every asked pod ``unknown`` — never idle.

Trust: the server's TLS certificate is always verified (``ca_file``, else the system's CAs), so a
spoofed Prometheus cannot feed "idle" into the engine; a bearer token is read from ``token_file``
before each query set (rotation-safe) and only ever sent as a header, never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import structlog
from prometheus_api_client import PrometheusConnect

from gpu_steward.policy.timeparse import as_utc
from gpu_steward.policy.usage import Usage, with_signals
from gpu_steward.sources.base import PodRef, unknown_for

log = structlog.get_logger(__name__)

# (metric, factor to percent)
METRICS: tuple[tuple[str, float], ...] = (("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 100.0), ("DCGM_FI_DEV_GPU_UTIL", 1.0))

# idle.signal -> the DCGM field (a 0..1 ratio)
SIGNAL_METRICS: dict[str, str] = {
    "GraphicsActive": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "SMActive": "DCGM_FI_PROF_SM_ACTIVE",
    "TensorActive": "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
}

Key = tuple[str, str]  # (namespace, pod)


class PrometheusSource:
    def __init__(
        self,
        url: str,
        *,
        window_seconds: float = 300.0,
        max_age_seconds: float = 180.0,
        timeout_seconds: float = 10.0,
        pod_label: str = "pod",
        namespace_label: str = "namespace",
        client: PrometheusConnect | None = None,
        ca_file: str | None = None,
        token_file: str | None = None,
    ) -> None:
        self.url = url
        self.ca_file = ca_file
        self.token_file = token_file
        self.window_seconds = window_seconds
        self.max_age = timedelta(seconds=max_age_seconds)
        self.timeout = timeout_seconds
        self.pod_label = pod_label
        self.namespace_label = namespace_label
        self._client = client

    @classmethod
    def from_settings(cls, settings: Any, **kw: Any) -> PrometheusSource:
        if not settings.prometheus_url:
            raise ValueError("utilization_source is prometheus but prometheus_url is not set")
        kw.setdefault("pod_label", settings.prometheus_pod_label)
        kw.setdefault("namespace_label", settings.prometheus_namespace_label)
        return cls(settings.prometheus_url, max_age_seconds=settings.sample_max_age_seconds,
                   ca_file=settings.prometheus_ca_file, token_file=settings.prometheus_bearer_token_file, **kw)

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.verify = self.ca_file or True  # never off
        return session

    def _headers(self) -> dict[str, str] | None:
        if not self.token_file:
            return None
        token = Path(self.token_file).read_text().strip()
        if not token:
            raise ValueError("the Prometheus bearer token file is empty")
        return {"Authorization": f"Bearer {token}"}

    def _conn(self) -> PrometheusConnect:
        if self._client is None:
            self._client = PrometheusConnect(url=self.url, session=self._session(), timeout=int(max(self.timeout, 1)))
        self._client.headers = self._headers()  # re-read each query set: projected tokens rotate
        return self._client

    async def close(self) -> None:
        self._client = None

    def _queries(self, metric: str) -> dict[str, str]:
        by = f"{self.namespace_label}, {self.pod_label}"
        sel = f'{metric}{{{self.pod_label}!=""}}'
        w = f"{int(self.window_seconds)}s"
        return {
            "mean": f"avg by ({by}) (avg_over_time({sel}[{w}]))",
            "max": f"max by ({by}) (max_over_time({sel}[{w}]))",
            "count": f"sum by ({by}) (count_over_time({sel}[{w}]))",
            "last": f"max by ({by}) (timestamp({sel}))",
        }

    def _series(self, query: str) -> dict[Key, float]:
        out: dict[Key, float] = {}
        for item in self._conn().custom_query(query, params={"timeout": f"{int(self.timeout)}s"}):
            labels, value = item.get("metric") or {}, item.get("value") or [None, None]
            key = (str(labels.get(self.namespace_label, "")), str(labels.get(self.pod_label, "")))
            try:
                out[key] = float(value[1])
            except (TypeError, ValueError, IndexError):
                continue
        return out

    def _metric_usage(self, metric: str, factor: float, wanted: set[Key], now: datetime) -> dict[Key, Usage]:
        q = {name: self._series(query) for name, query in self._queries(metric).items()}
        out: dict[Key, Usage] = {}
        for key in wanted & set(q["mean"]):
            last_ts = q["last"].get(key)
            if last_ts is None:
                continue
            usage = Usage.ok(
                util_mean=q["mean"][key] * factor,
                util_max=q["max"][key] * factor if key in q["max"] else None,
                samples=int(q["count"].get(key, 0)),
                last_sample_at=datetime.fromtimestamp(last_ts, tz=UTC),
                window_seconds=self.window_seconds,
            )
            problem = usage.usable(now, self.max_age)
            out[key] = Usage.unknown(f"{metric}: {problem}") if problem else usage
        return out

    def _fetch_sync(self, pods: Sequence[PodRef], now: datetime, signals: Collection[str] = ()) -> dict[str, Usage]:
        wanted = {(p.namespace, p.name) for p in pods}
        found: dict[Key, Usage] = {}
        for metric, factor in METRICS:
            missing = wanted - set(found)
            if not missing:
                break
            found.update(self._metric_usage(metric, factor, missing, now))
        extra = {signal: self._metric_usage(SIGNAL_METRICS[signal], 100.0, wanted, now)
                 for signal in sorted(signals) if signal in SIGNAL_METRICS}
        out: dict[str, Usage] = {}
        for p in pods:
            key = (p.namespace, p.name)
            base = found.get(key) or Usage.unknown("no DCGM utilization series for the pod")
            out[p.uid] = with_signals(base, {s: by_key[key] for s, by_key in extra.items() if key in by_key})
        return out

    async def fetch(self, pods: Sequence[PodRef], now: datetime, signals: Collection[str] = ()) -> dict[str, Usage]:
        """Usage per pod UID; the queries run in a worker thread (the client is synchronous)."""
        if not pods:
            return {}
        try:
            return await asyncio.to_thread(self._fetch_sync, pods, as_utc(now), signals)
        except Exception as exc:  # connection refused, HTTP errors, malformed answers: all mean "no data"
            reason = f"prometheus query failed: {type(exc).__name__}"
            log.warning("prometheus utilization unavailable", error=reason, pods=len(pods))
            return unknown_for(pods, reason)
