"""A throwaway PostgreSQL server for the label store's tests; each test gets a fresh database."""

import pytest

from imgclf.emulators import PostgresServer


@pytest.fixture(scope="session")
def postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """Each test that takes it runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labels.db'}"
    return request.getfixturevalue("postgres").create_database(f"t{abs(hash(request.node.nodeid)) % 10**9}")
