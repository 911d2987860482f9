"""Fixtures for the `imgclf` command's tests.

A subprocess (``test_cli.imgclf``) costs a TensorFlow import, 10-20 s on 2 busy cores: it is kept
for runs whose process matters (a hang, a child process, the installed script, a whole
retraining run); the rest call the command's own ``main()`` in this process (``in_process``).
"""

from __future__ import annotations

import os
import subprocess

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
