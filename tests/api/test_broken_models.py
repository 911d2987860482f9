"""A broken model version is reported as broken (503, code broken_model) and never takes healthy ones down."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from api.app import create_app
from models import inference
from models.registry import ModelRegistry
from tests.helpers import colour_image

RED = {"image": ("r.png", colour_image("red", 1))}


def _copy_version(root, name: str = "colours") -> int:
    """A new version of ``name``: the copy of colours v1."""
    registry = ModelRegistry(str(root))
    card = registry.card("colours", 1).model_copy(update={"name": name})
    return registry.register(card, str(root / "colours/versions/1/saved_model"))


def _wait_for(client: TestClient, key: str, text: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get("/readyz").json()
        if text in body["models"].get(key, ""):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{key!r} never said {text!r}: {body}")


def test_readyz_reports_a_broken_served_model_and_the_healthy_one_still_serves(make_client, registry_root):
    ModelRegistry(str(registry_root)).set_alias("shades", "production", _copy_version(registry_root, "shades"))
    (registry_root / "shades/versions/1/model.json").write_text('{"name": "shades", ')
    client = make_client()  # ready: colours serves
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    models = r.json()["models"]
    assert models["colours@production"] == "version 1"
    assert models["shades@production"].startswith("broken: model 'shades' version 1 is broken: model.json is not valid")
    ok = client.post("/v1/models/colours:classify", files=RED)
    assert (ok.status_code, ok.json()["labels"]) == (200, ["red"])
    broken = client.post("/v1/models/shades:classify", files=RED)
    assert broken.status_code == 503 and broken.json()["code"] == "broken_model"
    assert broken.json()["detail"].startswith("model 'shades' version 1 is broken: model.json is not valid JSON")
    ModelRegistry(str(registry_root)).set_alias("shades", "production", _copy_version(registry_root, "shades"))
    _wait_for(client, "shades@production", "version 2")  # the watcher retries it: fixed without a restart
    assert client.post("/v1/models/shades:classify", files=RED).json()["model_version"] == 2


def test_readyz_is_503_when_every_served_model_is_broken(api_settings, registry_root):
    (registry_root / "colours/versions/1/saved_model/saved_model.pb").unlink()
    with TestClient(create_app(api_settings())) as client:
        body = _wait_for(client, "colours@production", "broken")
        assert client.get("/readyz").status_code == 503 and body["ready"] is False
        assert "it has no saved_model/saved_model.pb" in body["models"]["colours@production"]
        assert client.get("/healthz").status_code == 200


def test_models_list_and_detail_show_broken_versions_and_still_answer_200(make_client, registry_root):
    v2 = _copy_version(registry_root)
    (registry_root / f"colours/versions/{v2}/model.json").write_text('{"name": "colours"}')
    (registry_root / "colours/aliases/staging").write_text("soon\n")
    client = make_client()
    listed = client.get("/v1/models")
    assert listed.status_code == 200
    (entry,) = listed.json()["models"]
    assert entry["versions"] == [1, v2] and entry["aliases"] == {"production": 1}
    assert list(entry["broken"]) == [str(v2)]
    assert entry["broken"][str(v2)].startswith(f"model 'colours' version {v2} is broken: model.json is not a valid")
    assert "alias 'staging' of model 'colours' is broken" in entry["broken_aliases"]["staging"]
    detail = client.get("/v1/models/colours")
    assert detail.status_code == 200
    assert [v["version"] for v in detail.json()["version_details"]] == [1]
    assert detail.json()["broken"] == entry["broken"] and detail.json()["label_spec"]["task"] == "multiclass"
    staging = client.post("/v1/models/colours:classify?alias=staging", files=RED)
    assert staging.status_code == 503 and staging.json()["code"] == "broken_model"


def test_detail_of_a_model_whose_every_version_is_broken_is_503(make_client, registry_root):
    _copy_version(registry_root, "shades")
    (registry_root / "shades/versions/1/model.json").write_text("[]")
    r = make_client().get("/v1/models/shades")
    assert r.status_code == 503 and r.json()["code"] == "broken_model"
    assert r.json()["detail"].startswith("every version of model 'shades' is broken: model 'shades' version 1")


def test_classify_on_a_version_that_does_not_load_is_503_and_the_load_is_not_retried(
    make_client, registry_root, monkeypatch
):
    registry = ModelRegistry(str(registry_root))
    corrupt = registry_root / "corrupt"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"not a saved model")
    version = registry.register(registry.card("colours", 1).model_copy(update={"runtimes": {}}), str(corrupt))
    client = make_client()
    loads = []
    real_load = inference.load
    monkeypatch.setattr(inference, "load", lambda path: loads.append(path) or real_load(path))
    answers = [client.post(f"/v1/models/colours:classify?version={version}", files=RED) for _ in range(5)]
    assert [a.status_code for a in answers] == [503] * 5
    assert {a.json()["code"] for a in answers} == {"broken_model"}
    detail = answers[0].json()["detail"]
    assert detail.startswith(f"model 'colours' version {version} is broken: its SavedModel does not load")
    assert "Traceback" not in answers[0].text and " at 0x" not in detail
    assert len(loads) == 1, "a failed load is remembered, not retried on every request"
    ok = client.post("/v1/models/colours:classify", files=RED)
    assert ok.status_code == 200 and ok.json()["model_version"] == 1


def test_an_alias_moved_to_a_broken_version_keeps_serving_the_old_one(make_client, registry_root):
    client = make_client()
    v2 = _copy_version(registry_root)
    (registry_root / f"colours/versions/{v2}/saved_model/saved_model.pb").unlink()
    ModelRegistry(str(registry_root)).set_alias("colours", "production", v2)
    body = _wait_for(client, "colours@production", "not moving")
    assert body["ready"] is True
    assert body["models"]["colours@production"].startswith(f"version 1 (not moving to version {v2}: model 'colours'")
    r = client.post("/v1/models/colours:classify", files=RED)
    assert (r.status_code, r.json()["model_version"]) == (200, 1)
    (registry_root / "colours/aliases/production").write_text("x\n")  # a corrupt alias file: still serving v1
    _wait_for(client, "colours@production", "alias 'production' of model 'colours' is broken")
    assert client.post("/v1/models/colours:classify", files=RED).json()["model_version"] == 1


def test_a_version_without_the_runtime_the_server_is_told_to_use_is_503_with_the_reason(make_client, registry_root):
    registry = ModelRegistry(str(registry_root))
    card = registry.card("colours", 1).model_copy(update={"runtimes": {}})
    version = registry.register(card, str(registry_root / "colours/versions/1/saved_model"))
    client = make_client(runtime="openvino")

    r = client.post(f"/v1/models/colours:classify?version={version}", files=RED)

    assert r.status_code == 503 and r.json()["code"] == "broken_model"
    assert "cannot be served: colours v" in r.json()["detail"] and "no OpenVINO artifact" in r.json()["detail"]
    ok = client.post("/v1/models/colours:classify", files=RED).json()
    assert (ok["model_version"], ok["runtime"]) == (1, "openvino")
