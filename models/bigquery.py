"""BigQuery clients that talk to the BigQuery emulator when ``BIGQUERY_EMULATOR_HOST`` is set.

Beam's BigQuery sink uses two clients: an apitools ``BigqueryV2`` (tables and datasets),
whose endpoint is a class attribute, and ``google.cloud.bigquery.Client`` (streaming
inserts), which reads ``BIGQUERY_EMULATOR_HOST`` itself but still asks
``google.auth.default()`` for credentials and a project. With no credentials the first
starts an interactive OAuth flow and the second raises, so against the emulator both are
given anonymous credentials up front. Without the variable nothing is changed.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import google.auth
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
"""The emulator's base URL, e.g. ``http://127.0.0.1:9050`` (the name google-cloud-bigquery reads)."""

PLACEHOLDER_PROJECT = "emulator-project"
"""The project ``google.auth.default()`` reports against the emulator when none is set.

Every request names its table's project, so this only fills a required field.
"""

_lock = threading.Lock()
_original_default: Any = None


def _host() -> str | None:
    host = os.environ.get(EMULATOR_ENV, "").strip().rstrip("/")
    return host or None


def _default_while_emulated(*args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """``google.auth.default`` that is anonymous while the emulator is configured, the real one otherwise."""
    if _host() is None:
        return _original_default(*args, **kwargs)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or PLACEHOLDER_PROJECT
    return AnonymousCredentials(), project


def use_emulator_if_configured() -> None:
    """With BIGQUERY_EMULATOR_HOST set, point Beam's BigQuery clients at it, anonymously; otherwise do nothing.

    Idempotent. It must run in the process that runs Beam's BigQuery sink; importing this
    module runs it, so a worker process that imports it is covered too.
    """
    global _original_default
    host = _host()
    if host is None:
        return
    from apache_beam.io.gcp.internal.clients.bigquery import BigqueryV2

    from models import storage

    BigqueryV2.BASE_URL = f"{host}/bigquery/v2/"
    storage.use_anonymous_beam_credentials()
    with _lock:
        if _original_default is None:
            _original_default = google.auth.default
            google.auth.default = _default_while_emulated


def client(project: str) -> bigquery.Client:
    """The official client for ``project``: on the emulator, anonymous, when BIGQUERY_EMULATOR_HOST is set."""
    host = _host()
    if host is None:
        return bigquery.Client(project=project)
    return bigquery.Client(project=project, client_options={"api_endpoint": host}, credentials=AnonymousCredentials())


use_emulator_if_configured()
