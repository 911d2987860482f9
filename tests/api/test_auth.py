"""API keys: 401 without one, 403 for a key scoped to other models, probes stay open."""

from __future__ import annotations

import hashlib

import pytest

from api.auth import parse_keys
from tests.helpers import colour_image

SCOPED_DIGEST = hashlib.sha256(b"scoped-secret").hexdigest()
KEYS = f"admin-secret, sha256:{SCOPED_DIGEST}@other-model"


def test_parse_keys_reads_raw_keys_digests_and_scopes():
    admin, scoped = parse_keys(KEYS)
    assert admin.digest == hashlib.sha256(b"admin-secret").hexdigest() and admin.models is None
    assert scoped.digest == SCOPED_DIGEST and scoped.models == {"other-model"}
    assert scoped.allows("other-model") and not scoped.allows("colours")
    assert parse_keys(" , ") == []


@pytest.mark.parametrize("bad", ["sha256:abc", "@colours", "sha256:" + "z" * 64])
def test_parse_keys_refuses_malformed_entries(bad):
    with pytest.raises(ValueError):
        parse_keys(bad)


def test_requests_without_a_valid_key_get_401(make_client):
    client = make_client(api_keys=KEYS)
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = client.get("/v1/models", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer" and "X-API-Key" in r.json()["detail"]
    r = client.post("/v1/models/colours:classify", files={"image": ("r.png", colour_image("red", 1))})
    assert r.status_code == 401


def test_header_and_bearer_keys_both_work(make_client):
    client = make_client(api_keys=KEYS)
    assert client.get("/v1/models", headers={"X-API-Key": "admin-secret"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": "Bearer admin-secret"}).status_code == 200


def test_a_key_scoped_to_other_models_gets_403_and_sees_none(make_client):
    client = make_client(api_keys=KEYS)
    scoped = {"X-API-Key": "scoped-secret"}
    image = {"image": ("r.png", colour_image("red", 1))}
    r = client.post("/v1/models/colours:classify", files=image, headers=scoped)
    assert r.status_code == 403 and "no access to model 'colours'" in r.json()["detail"]
    assert client.get("/v1/models/colours", headers=scoped).status_code == 403
    assert client.get("/v1/models", headers=scoped).json() == {"models": []}
    assert (
        client.post("/v1/models/colours:classify", files=image, headers={"X-API-Key": "admin-secret"}).status_code
        == 200
    )


def test_probes_and_metrics_need_no_key(make_client):
    client = make_client(api_keys=KEYS)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
