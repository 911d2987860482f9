"""Request and response bodies of the API; the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.label_spec import LabelSpec
from models.registry import NAME_PATTERN, RuntimeCheck


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong and, where it helps, what to do.")
    code: str | None = Field(None, description="Machine-readable code for image errors, e.g. 'decode_error'.")


class ClassifyJson(BaseModel):
    """The JSON form of a classify request: exactly one of ``image_base64`` or ``image_uri``."""

    model_config = ConfigDict(extra="forbid")

    image_base64: str | None = Field(None, description="The encoded image file, base64.")
    image_uri: str | None = Field(None, description="A gs:// or local URI under the server's allowed prefixes.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ClassifyJson:
        if (self.image_base64 is None) == (self.image_uri is None):
            raise ValueError("give exactly one of image_base64 or image_uri")
        return self


class ClassifyResponse(BaseModel):
    """The prediction record (docs/contracts.md) plus the request's id and latency."""

    request_id: str
    image_uri: str = Field(description="The URI given, or 'upload:<request id>' for an uploaded image.")
    labels: list[str]
    scores: dict[str, float]
    model_name: str
    model_version: int
    runtime: str = Field(description="What ran the model: 'tf' or 'openvino' (IMGCLF_RUNTIME).")
    predicted_at: str
    error: str | None = None
    latency_ms: float = Field(description="Time spent in the service, queueing and inference included.")


class ModelVersionInfo(BaseModel):
    version: int
    created_at: str
    parent_version: int | None
    aliases: list[str]
    test_metrics: dict[str, Any] = Field(description="Headline test-split metrics recorded at training.")
    runtimes: dict[str, RuntimeCheck] = Field(
        default_factory=dict, description="Accelerated artifacts and the parity gate's verdict on each."
    )
    serving_runtime: str | None = Field(None, description="What this process runs the version on, if loaded.")


class ModelSummary(BaseModel):
    name: str
    aliases: dict[str, int] = Field(description="Readable aliases and the versions they name.")
    versions: list[int] = Field(description="Every complete version, broken ones included.")
    served: dict[str, int] = Field(description="Aliases this server process has loaded, and their versions.")
    broken: dict[int, str] = Field(
        default_factory=dict, description="Versions that cannot be used (corrupt card, missing SavedModel): why."
    )
    broken_aliases: dict[str, str] = Field(
        default_factory=dict, description="Aliases whose file is corrupt: why. Resolving one answers 503."
    )


class ModelDetail(ModelSummary):
    label_spec: LabelSpec = Field(description="Of the default alias's version, else the newest usable one.")
    image_size: int
    backbone: str
    version_details: list[ModelVersionInfo] = Field(description="Usable versions; broken ones are in 'broken'.")


class ModelList(BaseModel):
    models: list[ModelSummary]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str] = Field(description="'model@alias' -> loaded version, or what is wrong.")


class OutputFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class BatchJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_csv: str = Field(description="CSV with an image_uri column, under an allowed prefix.")
    output_uri: str = Field(description="Where the predictions go (a file path or prefix), under an allowed prefix.")
    format: OutputFormat = OutputFormat.CSV
    model: str | None = Field(
        None, pattern=NAME_PATTERN, description="Model name; the registry's only model if omitted."
    )
    alias: str | None = Field(
        None, pattern=NAME_PATTERN, description="Alias to resolve when the job starts (default production)."
    )
    version: int | None = Field(None, ge=1, description="A fixed version instead of an alias.")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobCounts(BaseModel):
    done: int = Field(0, description="Records written (ok + errors); while running, images classified so far.")
    ok: int = 0
    errors: int = 0


class BatchJob(BaseModel):
    id: str
    state: JobState
    request: BatchJobRequest
    runner: str
    counts: JobCounts
    output_files: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None = Field(None, description="Run time so far, or in all once finished.")
    attempts: int
    error: str | None
    external_id: str | None = Field(None, description="The Dataflow job id when the job runs there.")


class BatchJobList(BaseModel):
    jobs: list[BatchJob]
