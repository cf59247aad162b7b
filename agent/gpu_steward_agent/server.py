"""One HTTP port: /metrics (Prometheus), /v1/summary (JSON for the operator), /healthz, /readyz.

The standard library's threading server keeps the agent's resident memory small (no event loop stack).
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import summary

if TYPE_CHECKING:
    from .agent import Agent
    from .metrics import AgentMetrics


class AgentHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], agent: Agent, metrics: AgentMetrics) -> None:
        self.agent = agent
        self.metrics = metrics
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server: AgentHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        agent = self.server.agent
        if path == "/metrics":
            self._send(200, self.server.metrics.render(), CONTENT_TYPE_LATEST)
        elif path == "/v1/summary":
            with agent.lock:
                body = summary.build(agent, time.time())
            self._send(200, json.dumps(body).encode(), "application/json")
        elif path == "/healthz":
            ok = agent.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"sampling loop stalled\n", "text/plain")
        elif path == "/readyz":
            ok = agent.ready()
            self._send(200 if ok else 503, b"ok\n" if ok else b"no NVML sample yet\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # access logs every scrape would drown the structured logs
