"""One typed settings object per process, read from ``IMGCLF_*`` environment variables.

Defaults run locally with no cloud account; every path may also be ``gs://...``.
Command-line flags override these values where a command offers them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from models.train_config import Duration


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMGCLF_", env_file=".env", extra="ignore")

    data_dir: str = Field("./var", description="Where datasets, outputs and scratch files go.")
    model_root: str = Field("./var/models", description="Model registry root (folder or gs://).")
    default_model: str | None = Field(
        None, description="Model used when a command names none and the registry has several."
    )
    default_alias: str = Field("production", description="Alias that serving and batch runs read.")
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Larger inputs are refused.")
    max_image_pixels: int = Field(50_000_000, gt=0, description="Width x height limit, against decompression bombs.")
    batch_size: int = Field(64, gt=0, description="Images per model call in batch inference.")
    runtime: Literal["tf", "openvino", "auto"] = Field(
        "auto",
        description="What runs a model in batch, streaming and the API: auto takes a version's OpenVINO artifact "
        "when it passed the parity gate and ran faster there (not on GPUs), TensorFlow otherwise.",
    )
    train_recipe: Literal["auto", "fast"] = Field(
        "auto", description="`imgclf train` default: the best recipe within the budget, or a head on frozen features."
    )
    train_budget: Duration | None = Field(None, description="`imgclf train` default time budget ('10m'); None scales.")
    labels_db: str = Field(
        "sqlite:///./var/labels.db", description="SQLAlchemy URL of the label store (PostgreSQL for several users)."
    )

    def internal_stores(self) -> dict[str, str]:
        """Locations only imgclf itself writes: no output and no read on a caller's behalf goes there."""
        stores = {
            "the model registry": self.model_root,
            "the retraining work folder": f"{self.data_dir.rstrip('/')}/retraining",
            "the API's job store": f"{self.data_dir.rstrip('/')}/api",
        }
        url = make_url(self.labels_db)
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            stores["the label store"] = url.database
        return stores


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
