"""Build the configured utilization source, with agent discovery from the agent DaemonSet's pods."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime

from gpu_steward.kube import Kube
from gpu_steward.settings import Settings
from gpu_steward.sources.agents import AgentEndpoint, AgentsSource, endpoints_from_pods
from gpu_steward.sources.base import PodRef, Usage, UtilizationSource
from gpu_steward.sources.prometheus import PrometheusSource


class DiscoveringAgentsSource:
    """The agents source, its endpoint list refreshed from the agent pods before each fetch.

    ``settings.agent_endpoints`` (node → URL) replaces discovery for local runs, where agents are
    processes on loopback rather than pods with IPs.
    """

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube, self.settings = kube, settings
        self.inner = AgentsSource.from_settings(settings)

    def _endpoints(self) -> list[AgentEndpoint]:
        if self.settings.agent_endpoints:
            return [AgentEndpoint(node, url) for node, url in sorted(self.settings.agent_endpoints.items())]
        pods = self.kube.list("v1", "Pod", self.settings.agent_namespace,
                              label_selector=self.settings.agent_label_selector)
        return endpoints_from_pods(pods, self.settings.agent_port)

    async def fetch(self, pods: Sequence[PodRef], now: datetime, signals: Collection[str] = ()) -> dict[str, Usage]:
        if not self.settings.agent_url_override:
            self.inner.set_endpoints(await asyncio.to_thread(self._endpoints))
        return await self.inner.fetch(pods, now, signals)

    async def close(self) -> None:
        await self.inner.close()


def make_source(kube: Kube, settings: Settings) -> UtilizationSource:
    if settings.utilization_source == "prometheus":
        return PrometheusSource.from_settings(settings)
    return DiscoveringAgentsSource(kube, settings)
