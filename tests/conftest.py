"""Shared fixtures: generated image sets, a tiny trained model, and the GCS emulator.

Images are synthetic colour fields (tests/helpers.py): a model trains on them in seconds.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import models  # noqa: F401  (quiet TensorFlow start-up)
from tests.helpers import COLOURS, free_port, tiny_train_config, write_colour_dataset, write_csv


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    """Images of three colours, 24 each, plus a manifest with explicit splits."""
    root = tmp_path_factory.mktemp("colours")
    rows = write_colour_dataset(root, list(COLOURS), 24)
    splits = ["train"] * 16 + ["validation"] * 4 + ["test"] * 4
    write_csv(
        root / "manifest.csv",
        ["image_uri", "labels", "split"],
        [[rel, c, splits[i % 24]] for i, (rel, c) in enumerate(rows)],
    )
    return root


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory, colour_data) -> Path:
    """A registry holding 'colours' v1: a multiclass small-CNN model, alias production."""
    from models.registry import ModelRegistry
    from models.training import train

    root = tmp_path_factory.mktemp("registry")
    train(tiny_train_config(model_name="colours", manifest=str(colour_data / "manifest.csv")), ModelRegistry(str(root)))
    return root


@pytest.fixture
def registry_root(tmp_path, trained_registry) -> Path:
    """A copy of the session's registry ('colours' v1, production) this test may change."""
    root = tmp_path / "registry"
    shutil.copytree(trained_registry, root)
    return root


@pytest.fixture(scope="session")
def gcs_emulator():
    """A real GCS emulator on loopback with bucket 'bucket'; yields its URL.

    STORAGE_EMULATOR_HOST points the Google clients (and Beam's gcsio) at it, and
    models.storage makes Beam connect anonymously instead of looking for credentials.
    """
    exe = shutil.which("gcp-storage-emulator") or str(Path(sys.executable).parent / "gcp-storage-emulator")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "start", "--host=127.0.0.1", f"--port={port}", "--default-bucket=bucket", "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("GCS emulator did not start")
    url = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    from models import storage

    storage.use_emulator_if_configured()
    yield url
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def pubsub_emulator():
    """Google's Pub/Sub emulator on loopback; PUBSUB_EMULATOR_HOST points the clients and Beam at it."""
    from imgclf.emulators import PubSubEmulator

    with PubSubEmulator() as emulator, emulator.environ():
        yield emulator


@pytest.fixture(scope="session")
def bigquery_emulator():
    """The BigQuery emulator (bqemulator, own venv) on loopback; BIGQUERY_EMULATOR_HOST points Beam at it."""
    from imgclf.emulators import BigQueryEmulator

    with BigQueryEmulator() as emulator, emulator.environ():
        yield emulator
