"""``imgclf serve``: the command users run, with its exposure rule and several workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from api.server import check_exposure, is_loopback
from api.settings import ApiSettings
from tests.helpers import colour_image, free_port


@pytest.mark.parametrize(
    ("host", "keys", "insecure", "refused"),
    [
        ("0.0.0.0", "", False, True),
        ("10.1.2.3", "", False, True),
        ("0.0.0.0", "k", False, False),
        ("0.0.0.0", "", True, False),
        ("127.0.0.1", "", False, False),
        ("localhost", "", False, False),
        ("::1", "", False, False),
    ],
)
def test_no_keys_means_loopback_only_unless_insecure(host, keys, insecure, refused):
    settings = ApiSettings(api_keys=keys, insecure=insecure)
    if refused:
        with pytest.raises(SystemExit, match="refusing to listen"):
            check_exposure(settings, host)
    else:
        check_exposure(settings, host)
    assert is_loopback(host) is (host in ("127.0.0.1", "localhost", "::1"))


def test_imgclf_serve_runs_two_workers_that_classify_and_share_metrics(tmp_path, trained_registry):
    port = free_port()
    env = {
        **os.environ,
        "IMGCLF_JOBS_DB": f"sqlite:///{tmp_path / 'jobs.db'}",
        "IMGCLF_JOBS_DIR": str(tmp_path / "jobs"),
        "IMGCLF_API_KEYS": "k",
    }
    cmd = [sys.executable, "-m", "imgclf.cli", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd + ["--model-root", str(trained_registry)], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        ready = 0
        while time.monotonic() < deadline and ready < 4:  # several answers: both workers are likely up
            try:
                ready = ready + 1 if httpx.get(f"{url}/readyz").status_code == 200 else 0
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        assert ready, "imgclf serve did not become ready"
        with httpx.Client(base_url=url, headers={"X-API-Key": "k"}, timeout=30) as client:
            answers = [
                client.post("/v1/models/colours:classify", files={"image": ("g.png", colour_image("green", i))})
                for i in range(6)
            ]
            metrics = client.get("/metrics").text
        assert [a.status_code for a in answers] == [200] * 6
        assert all(a.json()["labels"] == ["green"] for a in answers)
        line = 'imgclf_http_requests_total{method="POST",route="/v1/models/{name}:classify",status="200"}'
        assert f"{line} 6.0" in metrics, "metrics add up over the workers"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
