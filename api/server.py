"""``imgclf serve``: uvicorn with N workers, each building the app from ``IMGCLF_*`` settings.

Flags become environment variables before uvicorn starts, so every worker process
sees the same settings. Without API keys the server listens on loopback only, unless
told ``--insecure``.
"""

from __future__ import annotations

import os
import tempfile

from api.auth import parse_keys
from api.settings import ApiSettings
from models.locations import is_loopback


def check_exposure(settings: ApiSettings, host: str) -> None:
    """Refuses an open server: no keys and a non-loopback address need an explicit --insecure."""
    if not parse_keys(settings.api_keys) and not settings.insecure and not is_loopback(host):
        raise SystemExit(
            f"refusing to listen on {host} without API keys: set IMGCLF_API_KEYS, "
            "or pass --insecure to serve without authentication"
        )


def serve(host: str, port: int, workers: int, env: dict[str, str]) -> None:
    import uvicorn

    os.environ.update(env)
    settings = ApiSettings()
    check_exposure(settings, host)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="imgclf-metrics-")
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")
