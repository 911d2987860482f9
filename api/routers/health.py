"""Liveness, readiness and Prometheus metrics: open to everyone, as probes and scrapers expect."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api import deps
from api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers: nothing more (a Kubernetes liveness probe)."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(server: deps.Server):
    """Ready once every served model is loaded and warmed up (a readiness probe)."""
    ready, models = server.readiness()
    body = Readiness(ready=ready, models=models)
    return body if ready else JSONResponse(body.model_dump(), status_code=503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(collected: deps.Metrics) -> Response:
    """Prometheus text format: requests, latencies, batch sizes, queue depth, served versions."""
    body, content_type = collected.render()
    return Response(body, media_type=content_type)
