"""Probes and Prometheus metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from tests.helpers import colour_image


def test_healthz_answers_and_readyz_names_the_served_version(make_client):
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True, "models": {"colours@production": "version 1"}}


def test_readyz_is_503_with_a_reason_when_nothing_can_be_served(api_settings, tmp_path):
    with TestClient(create_app(api_settings(model_root=str(tmp_path / "empty")))) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and "no model has the alias 'production'" in r.json()["models"]["error"]


def test_readyz_reports_a_configured_model_that_does_not_exist(api_settings):
    with TestClient(create_app(api_settings(serve_models=["ghost"]))) as client:
        for _ in range(100):
            body = client.get("/readyz").json()
            if "error" in body["models"]:
                break
        assert body["ready"] is False and "ghost" in body["models"]["error"]


def test_metrics_count_requests_by_route_template_and_show_batches_and_versions(make_client):
    client = make_client()
    client.post("/v1/models/colours:classify", files={"image": ("r.png", colour_image("red", 1))})
    client.post("/v1/models/colours:classify", files={"image": ("r.txt", b"text")})
    text = client.get("/metrics").text
    assert 'imgclf_http_requests_total{method="POST",route="/v1/models/{name}:classify",status="200"} 1.0' in text
    assert 'imgclf_http_requests_total{method="POST",route="/v1/models/{name}:classify",status="415"} 1.0' in text
    assert 'imgclf_model_version{alias="production",model="colours"} 1.0' in text
    assert 'imgclf_batch_size_count{model="colours"} 1.0' in text
    assert 'imgclf_queue_depth{model="colours"} 0.0' in text
    assert "imgclf_http_request_duration_seconds_bucket" in text
