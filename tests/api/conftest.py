"""Fixtures for the API: a private copy of the trained registry, and apps built on it.

``make_client`` builds an app through the same factory uvicorn uses and runs its
lifespan (model loading, job runner) inside a TestClient; ``ServerThread`` runs one
under a real uvicorn on loopback for the tests that need real concurrency.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from tests.helpers import free_port


@pytest.fixture
def api_settings(tmp_path, registry_root, colour_data):
    def build(**overrides) -> ApiSettings:
        values = dict(
            model_root=str(registry_root),
            jobs_db=f"sqlite:///{tmp_path / 'jobs.db'}",
            jobs_dir=str(tmp_path / "jobs"),
            allowed_read_prefixes=[str(tmp_path), str(colour_data)],
            allowed_write_prefixes=[str(tmp_path)],
            max_queue_delay_ms=2.0,
            reload_interval_s=0.2,
            api_keys="",
        )
        return ApiSettings(**{**values, **overrides})

    return build


def wait_ready(client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


@pytest.fixture
def make_client(api_settings):
    clients = []

    def build(**overrides) -> TestClient:
        client = TestClient(create_app(api_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


class ServerThread:
    """A real uvicorn server for an app, on a free loopback port, in a background thread."""

    def __init__(self, settings: ApiSettings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        with httpx.Client(base_url=self.url) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
