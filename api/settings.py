"""The service's one settings object: the shared ``IMGCLF_*`` settings plus what serving needs.

Every field comes from an ``IMGCLF_*`` environment variable (``imgclf serve`` flags set
them), so each uvicorn worker process reads the same configuration.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode
from sqlalchemy.engine import make_url

from models.settings import Settings


class ApiSettings(Settings):
    api_keys: str = Field(
        "",
        description="Comma-separated API keys, each a raw key or 'sha256:<hex digest>', optionally followed by "
        "'@model1|model2' to limit it to those models. Empty: no auth, and loopback only unless insecure.",
    )
    insecure: bool = Field(False, description="Allow serving without API keys beyond loopback.")
    serve_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models loaded and warmed at start (readyz waits for them); empty: every model with the "
        "default alias. Other models load on their first request.",
    )
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Larger request bodies get 413.")
    max_batch_size: int = Field(32, gt=0, description="Most requests run as one model call.")
    max_queue_delay_ms: float = Field(
        2.0, ge=0, description="How long the first queued request waits for others to join its batch."
    )
    max_loaded_versions: int = Field(4, gt=0, description="Model versions kept in memory at once.")
    reload_interval_s: float = Field(5.0, gt=0, description="How often served aliases are re-read.")
    allowed_read_prefixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["./var/"],
        description="Where requests and batch jobs may read images and CSVs (local folders or gs:// prefixes); "
        "imgclf's own stores inside them stay out of reach.",
    )
    allowed_write_prefixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["./var/outputs/"],
        description="Where batch jobs may write predictions; never the registry or another internal store.",
    )
    read_timeout_s: float = Field(30.0, gt=0, description="Longest a read of a caller's URI may take (504 after).")
    max_concurrent_reads: int = Field(
        8, gt=0, description="Threads reading callers' URIs; slow reads queue here, never in other routes' way."
    )
    public_docs: bool = Field(
        False, description="Serve /docs, /redoc and /openapi.json without a key even when API keys are set."
    )
    jobs_db: str = Field("sqlite:///./var/api/jobs.db", description="SQLAlchemy URL of the batch-job store.")
    jobs_dir: str = Field("./var/api/jobs", description="Logs and summaries of batch jobs.")
    max_running_jobs: int = Field(2, gt=0, description="Batch jobs running at once; more wait in the queue.")
    job_runner: str = Field("local", pattern="^(local|dataflow)$", description="Where batch jobs run.")
    dataflow_project: str | None = None
    dataflow_region: str = "us-central1"
    dataflow_template: str | None = Field(None, description="gs:// path of the batch Flex Template spec.")
    dataflow_image: str | None = Field(
        None, description="The pipeline image the template was built from, for the workers (sdk_container_image)."
    )
    dataflow_temp_location: str | None = Field(None, description="gs:// prefix for Dataflow's temporary files.")
    dataflow_service_account: str | None = Field(None, description="The workers' service account e-mail.")
    dataflow_gpu: bool = Field(False, description="One NVIDIA L4 per worker, on g2-standard-4 machines.")
    dataflow_max_workers: int | None = Field(None, gt=0, description="Autoscaling's ceiling for each job.")
    dataflow_endpoint: str = "https://dataflow.googleapis.com"

    @field_validator("serve_models", "allowed_read_prefixes", "allowed_write_prefixes", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def internal_stores(self) -> dict[str, str]:
        stores = super().internal_stores()
        stores["the API's job logs"] = self.jobs_dir
        url = make_url(self.jobs_db)
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            stores["the API's job database"] = url.database
        return stores


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()
