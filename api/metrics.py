"""Prometheus metrics of the service, through prometheus-client.

Each app gets its own ``CollectorRegistry`` (tests build many apps in one process).
With several uvicorn workers, ``imgclf serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` adds up what every worker wrote there.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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
