"""FastAPI dependencies: the per-app objects a route needs, taken from ``app.state``.

``async def`` because they never block: FastAPI runs a plain ``def`` dependency on a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, authenticate, authorize_model
from api.job_runner import JobRunner
from api.jobs import JobStore
from api.metrics import ServiceMetrics
from api.serving import ModelServer
from api.settings import ApiSettings
from models.registry import ModelRegistry


async def settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def model_server(request: Request) -> ModelServer:
    return request.app.state.model_server


async def registry(request: Request) -> ModelRegistry:
    return request.app.state.model_server.registry


async def job_store(request: Request) -> JobStore:
    return request.app.state.job_store


async def job_runner(request: Request) -> JobRunner:
    return request.app.state.job_runner


async def metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


# Annotated forms, as routes declare them.
Settings = Annotated[ApiSettings, Depends(settings)]
Server = Annotated[ModelServer, Depends(model_server)]
Registry = Annotated[ModelRegistry, Depends(registry)]
Store = Annotated[JobStore, Depends(job_store)]
Runner = Annotated[JobRunner, Depends(job_runner)]
Metrics = Annotated[ServiceMetrics, Depends(metrics)]
Caller = Annotated[Principal, Depends(authenticate)]
AllowedModel = Annotated[str, Depends(authorize_model)]
