"""Prometheus metrics of the service, through prometheus-client.

Each app gets its own ``CollectorRegistry`` (tests build many apps in one process).
With several uvicorn workers, ``imgclf serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` adds up what every worker wrote there.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "imgclf_http_requests", "HTTP requests by route and status.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "imgclf_http_request_duration_seconds",
            "Time from request to response, by route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "imgclf_batch_size", "Images per model call.", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "imgclf_inference_duration_seconds",
            "Time of one model call (a whole batch).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "imgclf_queue_depth",
            "Requests waiting for a model call.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_version = Gauge(
            "imgclf_model_version",
            "The version each served alias points at.",
            ["model", "alias"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.loaded_versions = Gauge(
            "imgclf_loaded_model_versions", "Model versions in memory.", registry=r, multiprocess_mode="livesum"
        )
        self.jobs = Counter("imgclf_batch_jobs", "Batch jobs by final state.", ["state"], registry=r)

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """Counts and times every HTTP request by route template and status, refused ones too.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs each request in a task group of its
    own. Replacing it, and making the trivial dependencies async, halved the event loop's CPU per request
    under load (docs/benchmarks.md, "The API").
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            path = route.path if route is not None else "unmatched"  # the template, not the raw path
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(scope["method"], path).observe(time.perf_counter() - started)
