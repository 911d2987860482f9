"""Batch jobs: the Beam batch pipeline over a CSV of image URIs, run in the background."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from api import deps
from api.auth import Principal
from api.jobs import JobRow, to_schema
from api.schemas import BatchJob, BatchJobList, BatchJobRequest, ErrorResponse
from models.locations import check_allowed, check_output
from models.registry import RegistryError, check_name

router = APIRouter(prefix="/v1/batch-jobs", tags=["batch jobs"])
JobId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="The id POST returned.")]
_ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}


def _visible(row: JobRow | None, principal: Principal) -> JobRow:
    """A job its caller may see: one whose model the key may use (404 for others, as for unknown ids)."""
    if row is None or not principal.allows(BatchJobRequest.model_validate_json(row.request).model or ""):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such batch job")
    return row


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=BatchJob, responses=_ERRORS)
async def submit(
    job: BatchJobRequest,
    principal: deps.Caller,
    settings: deps.Settings,
    registry: deps.Registry,
    store: deps.Store,
) -> BatchJob:
    """Queues a job; it starts when fewer than the configured number of jobs are running."""
    internal = settings.internal_stores()
    check_allowed(job.input_csv, settings.allowed_read_prefixes, "input_csv", internal=internal)
    check_allowed(job.output_uri, settings.allowed_write_prefixes, "output_uri", internal=internal)
    await asyncio.to_thread(check_output, job.output_uri, [job.input_csv], internal)

    def resolve() -> str:  # fail now on an unknown model, alias or version, not minutes later
        name = check_name(registry.default_model(job.model or settings.default_model))
        registry.resolve(name, job.alias or settings.default_alias, job.version)
        return name

    try:
        name = await asyncio.to_thread(resolve)
    except ValueError:
        raise RegistryError(f"no model named {job.model!r}") from None
    if not principal.allows(name):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key has no access to model {name!r}")
    job = job.model_copy(update={"model": name})
    owner = principal.key.digest if principal.key else None
    row = await asyncio.to_thread(store.create, job, settings.job_runner, owner)
    return to_schema(row)


@router.get("", response_model=BatchJobList, responses={401: {"model": ErrorResponse}})
async def list_jobs(
    principal: deps.Caller,
    store: deps.Store,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> BatchJobList:
    """The most recent jobs first."""
    rows = await asyncio.to_thread(store.list, limit)
    allowed = [r for r in rows if principal.allows(BatchJobRequest.model_validate_json(r.request).model or "")]
    return BatchJobList(jobs=[to_schema(r) for r in allowed])


@router.get("/{job_id}", response_model=BatchJob, responses=_ERRORS)
async def get_job(
    job_id: JobId,
    principal: deps.Caller,
    store: deps.Store,
) -> BatchJob:
    """State, counts so far, output files and timings."""
    row = _visible(await asyncio.to_thread(store.get, job_id), principal)
    return to_schema(row)


@router.delete("/{job_id}", response_model=BatchJob, responses={**_ERRORS, 409: {"model": ErrorResponse}})
async def cancel_job(
    job_id: JobId,
    principal: deps.Caller,
    store: deps.Store,
    runner: deps.Runner,
) -> BatchJob:
    """Cancels a queued or running job (its pipeline process is stopped); 409 once it has finished."""
    row = _visible(await asyncio.to_thread(store.get, job_id), principal)
    if not await asyncio.to_thread(runner.cancel, row):
        raise HTTPException(status.HTTP_409_CONFLICT, f"the job already finished ({store.get(job_id).state})")
    return to_schema(store.get(job_id))
