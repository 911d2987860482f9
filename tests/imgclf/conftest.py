"""Fixtures for the `imgclf` command's tests.

A subprocess (``test_cli.imgclf``) costs a TensorFlow import, 10-20 s on 2 busy cores: it is kept
for runs whose process matters (the installed script, a Beam pipeline as users launch it);
the rest call the command's own ``main()`` in this process (``in_process``). Runs that could hang
on a FIFO run in-process under ``fifo_watchdog``, which turns a hang into a failure.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "IMGCLF_MODEL_ROOT": str(tmp_path / "models"), "IMGCLF_DATA_DIR": str(tmp_path / "var")}


@pytest.fixture
def in_process(env, monkeypatch, capsys):
    """``imgclf ARGS`` through the command's own main(), in this process, with ``env``'s registry and data folder."""
    from imgclf.cli import main
    from models.settings import get_settings

    for key in ("IMGCLF_MODEL_ROOT", "IMGCLF_DATA_DIR"):
        monkeypatch.setenv(key, env[key])
    get_settings.cache_clear()

    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["imgclf", *args], code, out, err)

    yield run
    get_settings.cache_clear()


@contextmanager
def fifo_watchdog(*fifos: Path, after: float = 15) -> Iterator[None]:
    """From ``after`` seconds on, opens and closes each FIFO's writing end every second, so a read that
    should never have started gets end-of-file (and the test a wrong result) instead of hanging forever.
    A run that never opens the FIFO is not affected: without a reader, the open fails at once."""
    stop = threading.Event()

    def release() -> None:
        if stop.wait(after):
            return
        while not stop.wait(1.0):
            for fifo in fifos:
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # no reader: nothing is stuck on it
                    pass

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
