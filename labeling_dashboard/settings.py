"""The dashboard process's one settings object: the shared ``IMGCLF_*`` settings plus its own.

With no users file and no trusted header, the dashboard runs as one local admin with no
login, which suits a laptop; the page says so.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from models.settings import Settings


class DashboardSettings(Settings):
    dashboard_users: str = Field(
        "", description="YAML file of users with bcrypt-hashed passwords and roles (imgclf dashboard-user add)."
    )
    trusted_user_header: str = Field(
        "",
        description="Header an authenticating proxy sets to the signed-in user, e.g. X-Goog-Authenticated-User-Email "
        "behind IAP. Only set it when the proxy is the only way in.",
    )
    dashboard_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Users from the trusted header who are admins; the others annotate."
    )
    dashboard_model: str | None = Field(
        None, description="Model whose label spec the controls offer; default the registry's default model."
    )
    retrain_config: str | None = Field(
        "./var/retrain.yaml", description="Retraining YAML the Retrain page starts runs with (make demo writes one)."
    )
    allowed_read_prefixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["./var/"], description="Where the Admin page may import from (folders, gs://)."
    )
    labels_db_wait_s: float = Field(
        5.0, gt=0, description="How long a save waits for a locked SQLite store before the page says so."
    )
    grid_page_size: int = Field(48, gt=0, le=200, description="Thumbnails per grid page.")

    @field_validator("dashboard_admins", "allowed_read_prefixes", mode="before")
    @classmethod
    def _split(cls, value):
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


@lru_cache(maxsize=1)
def get_dashboard_settings() -> DashboardSettings:
    return DashboardSettings()
