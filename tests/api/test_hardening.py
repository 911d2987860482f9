"""The service as an attacker or a careless client uses it: no request destroys data it did
not create, reads outside the allowed locations, hangs a worker or earns a stack trace.
(A batch job's rows outside them: tests/api/test_batch_jobs.py, beside the job's other checks.)"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.settings import ApiSettings
from models.locations import UriNotAllowed, check_allowed
from tests.api.conftest import ServerThread
from tests.helpers import colour_image, file_tree, write_csv


@pytest.fixture
def live(api_settings, tmp_path):
    """A real uvicorn over a private registry, reading from tmp/in and writing to tmp/out only."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    settings = api_settings(
        allowed_read_prefixes=[str(tmp_path / "in")], allowed_write_prefixes=[str(tmp_path / "out")]
    )
    with ServerThread(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        client.settings = settings
        yield client


def test_a_batch_job_can_never_write_into_the_registry_or_the_job_store(live, tmp_path, registry_root):
    source = write_csv(tmp_path / "in" / "in.csv", ["image_uri"], [[str(tmp_path / "in" / "x.png")]])
    before = file_tree(registry_root)
    # Even with every folder allowed for writing, internal stores stay out of reach.
    for target in (
        registry_root,
        registry_root / "colours",
        registry_root / "colours" / "aliases" / "production",
        Path(live.settings.jobs_dir) / "out.csv",
        Path(live.settings.jobs_db.removeprefix("sqlite:///")),
    ):
        settings = live.settings.model_copy(update={"allowed_write_prefixes": ["/"]})
        with pytest.raises(UriNotAllowed, match="inside"):
            check_allowed(str(target), settings.allowed_write_prefixes, "output_uri", settings.internal_stores())
        r = live.post("/v1/batch-jobs", json={"input_csv": str(source), "output_uri": str(target)})
        assert r.status_code == 403, (target, r.text)
    assert file_tree(registry_root) == before
    assert live.get("/v1/batch-jobs").json() == {"jobs": []}


def test_an_output_that_is_a_folder_or_the_input_is_refused(make_client, tmp_path):
    client = make_client(
        allowed_read_prefixes=[str(tmp_path / "data")], allowed_write_prefixes=[str(tmp_path / "data")]
    )
    source = write_csv((tmp_path / "data").mkdir() or tmp_path / "data" / "in.csv", ["image_uri"], [["x.png"]])
    (tmp_path / "data" / "results").mkdir()
    (tmp_path / "data" / "results" / "keep.csv").write_text("mine")
    r = client.post("/v1/batch-jobs", json={"input_csv": str(source), "output_uri": str(tmp_path / "data" / "results")})
    assert r.status_code == 422 and "existing folder" in r.json()["detail"]
    r = client.post("/v1/batch-jobs", json={"input_csv": str(source), "output_uri": str(source)})
    assert r.status_code == 422 and "is the input" in r.json()["detail"]
    assert (tmp_path / "data" / "results" / "keep.csv").read_text() == "mine"
    assert source.read_bytes() == b"image_uri\r\nx.png\r\n"


def test_the_default_prefixes_keep_reads_and_writes_apart_and_off_internal_stores():
    s = ApiSettings(_env_file=None)
    assert s.allowed_read_prefixes == ["./var/"] and s.allowed_write_prefixes == ["./var/outputs/"]
    internal = s.internal_stores()
    check_allowed("./var/outputs/p.csv", s.allowed_write_prefixes, internal=internal)
    for where, prefixes in (
        ("./var/models/m/aliases/production", s.allowed_write_prefixes),
        ("./var/demo/in.csv", s.allowed_write_prefixes),
        ("./var/models/m/versions/1/model.json", s.allowed_read_prefixes),
        ("./var/api/jobs.db", s.allowed_read_prefixes),
        ("./var/retraining/lineage.db", s.allowed_read_prefixes),
    ):
        with pytest.raises(UriNotAllowed):
            check_allowed(where, prefixes, internal=internal)


def test_a_fifo_image_uri_is_refused_at_once_and_the_server_keeps_answering(live, tmp_path):
    os.mkfifo(tmp_path / "in" / "pipe.png")
    started = time.monotonic()
    replies = []

    def ask():
        replies.append(live.post("/v1/models/colours:classify", json={"image_uri": str(tmp_path / "in" / "pipe.png")}))

    threads = [threading.Thread(target=ask) for _ in range(12)]  # more than the reader threads
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in replies] == [404] * 12
    assert "not a regular file" in replies[0].json()["detail"]
    assert time.monotonic() - started < 30
    assert live.get("/healthz").status_code == 200


def test_a_slow_store_times_out_alone_without_starving_other_routes(make_client, tmp_path, monkeypatch):
    """Fault injection: reads of callers' URIs that take forever (a hung network store)."""
    import api.routers.classify as classify

    release = threading.Event()
    monkeypatch.setattr(classify, "read_image", lambda path, limit: release.wait(20) and b"")
    client = make_client(read_timeout_s=1.0, max_concurrent_reads=2)
    (tmp_path / "slow.png").write_bytes(colour_image("red", 1))
    replies = []

    def ask():
        replies.append(client.post("/v1/models/colours:classify", json={"image_uri": str(tmp_path / "slow.png")}))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    upload = client.post("/v1/models/colours:classify", files={"image": ("r.png", colour_image("red", 2))})
    assert upload.status_code == 200  # other work goes on while the reader threads are stuck
    for t in threads:
        t.join(30)
    release.set()
    assert [r.status_code for r in replies] == [504] * 6
    assert "took over 1 s" in replies[0].json()["detail"]


def test_docs_follow_the_key_rule(make_client):
    locked = make_client(api_keys="k1")
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert locked.get(path).status_code == 401, path
        assert locked.get(path, headers={"X-API-Key": "k1"}).status_code == 200, path
    assert "/v1/models/{name}:classify" in locked.get("/openapi.json", headers={"X-API-Key": "k1"}).json()["paths"]
    opened = make_client(api_keys="k1", public_docs=True)
    assert opened.get("/openapi.json").status_code == 200 and opened.get("/docs").status_code == 200


def test_a_client_that_leaves_mid_body_is_no_server_error(live, caplog):
    host, port = live.base_url.host, live.base_url.port
    for _ in range(3):
        with socket.create_connection((host, port)) as s:
            s.sendall(
                b"POST /v1/models/colours:classify HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
            )
            time.sleep(0.2)
    time.sleep(0.5)
    metrics = live.get("/metrics").text
    assert 'status="500"' not in metrics
    assert 'status="499"' in metrics  # counted as the client's doing
    assert not [r for r in caplog.records if r.levelname == "ERROR" and "unhandled" in r.getMessage()]


def test_a_batch_jobs_alias_and_model_are_checked_like_classify(live, tmp_path):
    source = write_csv(tmp_path / "in" / "in.csv", ["image_uri"], [["x.png"]])
    for field, value in (("alias", "../../etc"), ("model", "a/b"), ("alias", "x" * 65)):
        body = {"input_csv": str(source), "output_uri": str(tmp_path / "out" / "p.csv"), field: value}
        r = live.post("/v1/batch-jobs", json=body)
        assert r.status_code == 422, (field, value, r.text)


def test_messages_never_show_object_reprs(live):
    r = live.post("/v1/models/colours:classify", files={"image": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)})
    assert r.status_code == 422
    assert " at 0x" not in r.text and "BytesIO" not in r.text
    assert json.loads(r.text)["code"] == "decode_error"
