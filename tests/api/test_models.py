"""GET /v1/models and /v1/models/{name}: versions, aliases, label spec, metrics."""

from __future__ import annotations


def test_list_shows_each_model_with_its_aliases_and_served_version(make_client):
    body = make_client().get("/v1/models").json()
    assert body == {
        "models": [
            {
                "name": "colours",
                "aliases": {"production": 1},
                "versions": [1],
                "served": {"production": 1},
                "broken": {},
                "broken_aliases": {},
            }
        ]
    }


def test_detail_has_label_spec_and_test_metrics(make_client):
    body = make_client().get("/v1/models/colours").json()
    assert body["label_spec"]["task"] == "multiclass"
    assert body["label_spec"]["labels"] == ["blue", "green", "red"]
    assert body["image_size"] == 32 and body["backbone"] == "small_cnn"
    (v1,) = body["version_details"]
    assert v1["version"] == 1 and v1["aliases"] == ["production"]
    assert 0 <= v1["test_metrics"]["accuracy"] <= 1 and v1["test_metrics"]["count"] == 12
    gate = v1["runtimes"]["openvino"]
    assert gate["passed"] and gate["split"] == "test" and gate["images"] == 12 and gate["decisions_changed"] == 0
    assert v1["serving_runtime"] in ("tf", "openvino")  # auto: whichever ran faster in the gate


def test_detail_says_which_runtime_serves_each_loaded_version(make_client):
    (v1,) = make_client(runtime="openvino").get("/v1/models/colours").json()["version_details"]
    assert v1["serving_runtime"] == "openvino"


def test_unknown_or_invalid_model_name_is_404(make_client):
    client = make_client()
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/models/..%2F..%2Fetc").status_code == 404
