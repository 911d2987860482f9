"""POST /v1/models/{name}:classify: uploads, JSON bodies, options and every refusal."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.helpers import colour_image


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_upload_returns_the_prediction_record(make_client):
    client = make_client()
    r = client.post("/v1/models/colours:classify", files={"image": ("red.png", colour_image("red", 7))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == ["red"]
    assert set(body["scores"]) == {"red", "green", "blue"}
    assert abs(sum(body["scores"].values()) - 1) < 1e-3
    assert (body["model_name"], body["model_version"], body["error"]) == ("colours", 1, None)
    assert body["image_uri"] == f"upload:{body['request_id']}"
    assert body["latency_ms"] > 0 and body["predicted_at"].endswith("Z")
    assert body["runtime"] in ("tf", "openvino")


def test_openvino_serves_tensorflows_answers_and_says_so(make_client):
    images = [colour_image(c, seed) for seed in (3, 4) for c in ("red", "green", "blue")]
    answers = {}
    for runtime in ("tf", "openvino"):
        client = make_client(runtime=runtime)
        answers[runtime] = [
            client.post("/v1/models/colours:classify", files={"image": ("i.png", i)}).json() for i in images
        ]
    for on_tf, on_ov in zip(answers["tf"], answers["openvino"], strict=True):
        assert (on_tf["runtime"], on_ov["runtime"]) == ("tf", "openvino")
        assert on_ov["labels"] == on_tf["labels"]
        assert on_ov["scores"] == pytest.approx(on_tf["scores"], abs=1e-4)


def test_base64_json_gives_the_same_scores_as_an_upload(make_client):
    client = make_client()
    image = colour_image("blue", 3)
    uploaded = client.post("/v1/models/colours:classify", files={"image": ("b.png", image)}).json()
    sent = client.post("/v1/models/colours:classify", json={"image_base64": base64.b64encode(image).decode()})
    assert sent.status_code == 200, sent.text
    assert sent.json()["labels"] == ["blue"]
    assert np.allclose(list(sent.json()["scores"].values()), list(uploaded["scores"].values()), atol=1e-5)


def test_uri_under_an_allowed_prefix_is_read_and_echoed(make_client, colour_data):
    client = make_client()
    uri = str(colour_data / "green" / "0.png")
    r = client.post("/v1/models/colours:classify", json={"image_uri": uri})
    assert r.status_code == 200, r.text
    assert (r.json()["image_uri"], r.json()["labels"]) == (uri, ["green"])


def test_uri_outside_the_allowed_prefixes_is_forbidden(make_client, colour_data):
    client = make_client()
    for uri in ("/etc/passwd", "file:///etc/hostname", str(colour_data / ".." / ".." / "etc" / "passwd")):
        r = client.post("/v1/models/colours:classify", json={"image_uri": uri})
        assert r.status_code == 403, (uri, r.text)
        assert "outside the allowed locations" in r.json()["detail"]


def test_missing_file_under_an_allowed_prefix_is_404(make_client, tmp_path):
    r = make_client().post("/v1/models/colours:classify", json={"image_uri": str(tmp_path / "nope.png")})
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_top_k_returns_labels_in_score_order(make_client):
    body = (
        make_client()
        .post("/v1/models/colours:classify?top_k=3", files={"image": ("r.png", colour_image("red", 1))})
        .json()
    )
    assert len(body["labels"]) == 3 and body["labels"][0] == "red"
    assert [body["scores"][label] for label in body["labels"]] == sorted(body["scores"].values(), reverse=True)


def test_explicit_version_and_unknown_version_alias_or_model(make_client):
    client = make_client()
    image = {"image": ("r.png", colour_image("red", 1))}
    assert client.post("/v1/models/colours:classify?version=1", files=image).json()["model_version"] == 1
    for url, says in [
        ("/v1/models/colours:classify?version=9", "no version 9"),
        ("/v1/models/colours:classify?alias=staging", "no alias 'staging'"),
        ("/v1/models/nope:classify", "no model named 'nope'"),
    ]:
        r = client.post(url, files=image)
        assert r.status_code == 404 and says in r.json()["detail"], (url, r.text)


def test_not_an_image_is_415_and_a_corrupt_one_422(make_client):
    client = make_client()
    r = client.post("/v1/models/colours:classify", files={"image": ("a.txt", b"hello, world")})
    assert (r.status_code, r.json()["code"]) == (415, "not_an_image")
    truncated = colour_image("red", 1)[:60]
    r = client.post("/v1/models/colours:classify", files={"image": ("t.png", truncated)})
    assert (r.status_code, r.json()["code"]) == (422, "decode_error")


def test_image_whose_header_parses_but_pixels_do_not_decode_is_422(make_client):
    """Only the in-graph decoder sees this; the batch it was in must not fail for others."""
    client = make_client()
    good = colour_image("red", 2)
    broken = bytearray(colour_image("red", 3))
    broken[60:-20] = bytes(len(broken) - 80)  # zero the compressed data, keep header and trailer
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda data: client.post("/v1/models/colours:classify", files={"image": ("x.png", data)}),
                [bytes(broken)] + [good] * 7,
            )
        )
    assert (answers[0].status_code, answers[0].json()["code"]) == (422, "decode_error")
    assert [a.status_code for a in answers[1:]] == [200] * 7


def test_oversized_upload_is_413_before_decoding(make_client):
    client = make_client(max_upload_bytes=20_000)
    big = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(big).save(out, "PNG")
    r = client.post("/v1/models/colours:classify", files={"image": ("big.png", out.getvalue())})
    assert r.status_code == 413, r.text
    r = client.post("/v1/models/colours:classify", json={"image_base64": base64.b64encode(out.getvalue()).decode()})
    assert r.status_code == 413, r.text


def test_body_over_the_limit_is_refused_even_without_content_length(make_client):
    client = make_client(max_upload_bytes=10_000)

    def chunks():
        for _ in range(40):
            yield b"x" * 4096

    r = client.post("/v1/models/colours:classify", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_decompression_bomb_is_413(make_client):
    client = make_client(max_image_pixels=1_000_000)
    r = client.post("/v1/models/colours:classify", files={"image": ("bomb.png", _png(4000, 4000))})
    assert (r.status_code, r.json()["code"]) == (413, "too_large")
    assert "4000x4000" in r.json()["detail"]


def test_wrong_content_type_and_malformed_json_are_refused_clearly(make_client):
    client = make_client()
    r = client.post("/v1/models/colours:classify", content=b"abc", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    assert client.post("/v1/models/colours:classify", json={}).status_code == 422
    r = client.post("/v1/models/colours:classify", json={"image_base64": "***"})
    assert r.status_code == 422 and "base64" in r.json()["detail"]
    r = client.post("/v1/models/colours:classify", files={"picture": ("r.png", colour_image("red", 1))})
    assert r.status_code == 422 and "'image'" in r.json()["detail"]


def test_concurrent_requests_share_model_calls(make_client):
    client = make_client(max_queue_delay_ms=50)
    images = [colour_image(c, i) for i in range(8) for c in ("red", "green")]
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda data: client.post("/v1/models/colours:classify", files={"image": ("x.png", data)}), images)
        )
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["labels"][0] for a in answers] == [c for _ in range(8) for c in ("red", "green")]
    metrics = client.get("/metrics").text
    calls = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("imgclf_batch_size_count")))
    summed = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("imgclf_batch_size_sum")))
    assert summed == 16 and calls < 16, metrics


def test_several_models_are_served_side_by_side(make_client, registry_root):
    from models.registry import ModelRegistry

    registry = ModelRegistry(str(registry_root))
    card = registry.card("colours", 1).model_copy(update={"name": "shades"})
    registry.set_alias(
        "shades", "production", registry.register(card, str(registry_root / "colours/versions/1/saved_model"))
    )
    client = make_client()
    assert client.get("/readyz").json()["models"] == {
        "colours@production": "version 1",
        "shades@production": "version 1",
    }
    for name in ("colours", "shades"):
        r = client.post(f"/v1/models/{name}:classify", files={"image": ("g.png", colour_image("green", 4))})
        assert (r.status_code, r.json()["model_name"], r.json()["labels"]) == (200, name, ["green"])


def test_a_server_fault_is_a_500_without_a_stack_trace(make_client, monkeypatch):
    # (a version whose SavedModel does not load is a 503 broken_model: tests/api/test_broken_models.py)
    client = make_client()

    def fault() -> str:
        raise RuntimeError("a fault <object at 0x7f00> inside the service")

    monkeypatch.setattr("api.routers.classify.utc_now", fault)
    r = client.post("/v1/models/colours:classify", files={"image": ("r.png", colour_image("red", 1))})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error; the server log has the details", "code": None}
    assert "Traceback" not in r.text and "0x7f00" not in r.text


def test_a_json_body_that_is_not_utf8_is_a_422_not_a_500(make_client):
    r = make_client().post(
        "/v1/models/colours:classify", content=b"\xb0G\xff\xf1", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
