"""The app factory: ``create_app(settings)`` builds one service instance.

uvicorn calls it once per worker (``imgclf serve`` passes ``--factory``); tests call it
with their own settings. Startup loads and warms the served models in the background,
so ``/healthz`` answers at once and ``/readyz`` turns 200 when they are ready.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from api.auth import parse_keys
from api.job_runner import JobRunner
from api.jobs import JobStore
from api.limits import BodySizeLimit
from api.metrics import RequestMetrics, ServiceMetrics
from api.routers import batch_jobs, classify, docs, health, models
from api.serving import ModelServer
from api.settings import ApiSettings, get_api_settings
from models.errors import BrokenModel, ImgclfError, describe, http_status
from models.prediction import ErrorCode, ImageError
from models.registry import ModelRegistry
from models.storage import use_emulator_if_configured

log = logging.getLogger("imgclf.api")

IMAGE_ERROR_STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_AN_IMAGE: 415,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.DECODE_ERROR: 422,
    ErrorCode.INFERENCE_ERROR: 500,
    ErrorCode.NOT_ALLOWED: 403,
    ErrorCode.INVALID_ROW: 422,
}
CLIENT_CLOSED = 499  # nginx's code for a client that went away before the answer: not a server fault


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_api_settings()
    use_emulator_if_configured()
    metrics = ServiceMetrics()
    server = ModelServer(ModelRegistry(settings.model_root), settings, metrics)
    store = JobStore(settings.jobs_db)
    runner = JobRunner(store, settings, metrics)
    reader_pool = ThreadPoolExecutor(settings.max_concurrent_reads, thread_name_prefix="caller-reads")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.create_task(server.start(), name="load-models")
        jobs = asyncio.create_task(runner.run_forever(), name="job-runner")
        yield
        jobs.cancel()
        loading.cancel()
        await asyncio.gather(jobs, loading, return_exceptions=True)
        await server.stop()
        runner.close()
        reader_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="imgclf",
        version="1",
        summary="Image classification: single images with dynamic batching, and batch jobs.",
        lifespan=lifespan,
        openapi_url=None,  # served by api/routers/docs.py, under the key rule
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.api_keys = parse_keys(settings.api_keys)
    app.state.metrics = metrics
    app.state.model_server = server
    app.state.job_store = store
    app.state.job_runner = runner
    app.state.reader_pool = reader_pool
    for router in (health.router, docs.router, models.router, classify.router, batch_jobs.router):
        app.include_router(router)
    _add_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + 64 * 1024)  # room for multipart framing
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost, so refused requests are counted too
    return app


def _error(status: int, detail: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ImageError)
    async def image_error(request: Request, e: ImageError) -> JSONResponse:
        return _error(IMAGE_ERROR_STATUS[e.code], e.message, e.code.value)

    @app.exception_handler(ImgclfError)
    async def family(request: Request, e: ImgclfError) -> JSONResponse:
        status = http_status(e)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, describe(e))
        return _error(status, describe(e, 1000))

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, e: ClientDisconnect) -> Response:
        log.info("client left during %s %s", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(BrokenModel)
    async def broken_model(request: Request, e: BrokenModel) -> JSONResponse:
        # The request was fine; this version cannot be used (corrupt card, missing or unloadable SavedModel).
        return _error(503, str(e), "broken_model")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        # The trace goes to the log, never to the client.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server log has the details")
