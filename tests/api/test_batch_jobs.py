"""Batch jobs end to end: submitted over HTTP, run by the Beam batch pipeline in a worker process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
import uuid

from fastapi.testclient import TestClient

from api.app import create_app
from api.job_runner import JobRunner
from api.jobs import JobStore
from api.metrics import ServiceMetrics
from api.schemas import BatchJobRequest, JobState
from models import storage
from models.registry import ModelRegistry
from tests.api.conftest import wait_ready
from tests.helpers import colour_image, write_csv


def _input_csv(folder, n: int = 6):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour = ["red", "green", "blue"][i % 3]
        (folder / f"{i}.png").write_bytes(colour_image(colour, 500 + i))
        rows.append([str(folder / f"{i}.png"), colour])
    rows.append([str(folder / "missing.png"), "red"])
    return write_csv(folder / "in.csv", ["image_uri", "truth"], rows)


def _wait(client, job_id: str, states: set[str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/batch-jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job stayed {job['state']}: {job}")


def test_a_job_runs_the_batch_pipeline_refuses_rows_outside_the_allowed_locations_and_outlives_an_api_restart(
    api_settings, tmp_path, registry_root
):
    """The pipeline runs in its own process, so an API restart while it runs loses nothing; rows it may not
    read are error records that say nothing about the server's files."""
    settings = api_settings(
        allowed_read_prefixes=[str(tmp_path / "in")], allowed_write_prefixes=[str(tmp_path / "out")]
    )
    source = _input_csv(tmp_path / "in")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "real.png").write_bytes(colour_image("red", 6))
    refused = [
        "/etc/passwd",
        "/root/does-not-exist.png",
        str(tmp_path / "secret" / "real.png"),
        "../secret/real.png",
        str(registry_root / "colours" / "versions" / "1" / "model.json"),
    ]
    with source.open("a", newline="") as f:
        csv.writer(f).writerows([uri, "red"] for uri in refused)
    out = tmp_path / "out" / "predictions.jsonl"
    with TestClient(create_app(settings)) as first_api:
        wait_ready(first_api)
        body = {"input_csv": str(source), "output_uri": str(out), "format": "jsonl"}
        r = first_api.post("/v1/batch-jobs", json=body)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] == "queued" and job["request"]["model"] == "colours"
        _wait(first_api, job["id"], {"running"})
    with TestClient(create_app(settings)) as second_api:
        job = _wait(second_api, job["id"], {"succeeded", "failed"})
        listed = second_api.get("/v1/batch-jobs").json()["jobs"]
    assert job["state"] == "succeeded", job
    assert job["counts"] == {"done": 12, "ok": 6, "errors": 6}
    assert job["output_files"] == [str(out)] and job["seconds"] > 0 and job["attempts"] == 1
    records = {r["image_uri"]: r["error"] for r in map(json.loads, out.read_text().splitlines())}
    assert len(records) == 12 and records[str(tmp_path / "in" / "missing.png")].startswith("not_found")
    # The same words whether the path exists or not: the records tell nothing about the server's files.
    assert {records[uri] for uri in refused} == {"not_allowed: outside the locations this run may read"}
    assert listed[0]["id"] == job["id"]


def test_submission_is_checked_before_queueing(make_client, tmp_path):
    client = make_client()
    source = _input_csv(tmp_path / "in", 1)
    ok_out = str(tmp_path / "out.csv")
    cases = [
        ({"input_csv": "/etc/passwd", "output_uri": ok_out}, 403),
        ({"input_csv": str(source), "output_uri": "/etc/imgclf.csv"}, 403),
        ({"input_csv": str(source), "output_uri": "gs://someone-elses-bucket/out.csv"}, 403),
        ({"input_csv": str(source), "output_uri": ok_out, "model": "nope"}, 404),
        ({"input_csv": str(source), "output_uri": ok_out, "alias": "staging"}, 404),
        ({"input_csv": str(source), "output_uri": ok_out, "format": "xml"}, 422),
        ({"input_csv": str(source)}, 422),
    ]
    for body, status in cases:
        r = client.post("/v1/batch-jobs", json=body)
        assert r.status_code == status, (body, r.text)
    assert client.get("/v1/batch-jobs").json() == {"jobs": []}
    assert client.get(f"/v1/batch-jobs/{uuid.uuid4()}").status_code == 404
    assert client.get("/v1/batch-jobs/not-an-id").status_code == 422


def test_queued_and_running_jobs_can_be_cancelled(make_client, tmp_path):
    client = make_client(max_running_jobs=1)
    source = _input_csv(tmp_path / "in", 3)
    first, second = (
        client.post("/v1/batch-jobs", json={"input_csv": str(source), "output_uri": str(tmp_path / f"{n}.csv")}).json()
        for n in (1, 2)
    )
    running = _wait(client, first["id"], {"running"})
    assert client.get(f"/v1/batch-jobs/{second['id']}").json()["state"] == "queued", "at most one runs at once"

    assert client.delete(f"/v1/batch-jobs/{second['id']}").json()["state"] == "cancelled"
    assert client.delete(f"/v1/batch-jobs/{running['id']}").json()["state"] == "cancelled"
    pid = client.app.state.job_store.get(running["id"]).pid
    deadline = time.monotonic() + 10
    while subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0 and time.monotonic() < deadline:
        client.app.state.job_runner.tick()  # collects the child's exit status
        time.sleep(0.1)
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0, "pipeline still running"
    r = client.delete(f"/v1/batch-jobs/{running['id']}")
    assert r.status_code == 409 and "already finished" in r.json()["detail"]
    assert not (tmp_path / "2.csv").exists()


def test_a_job_whose_process_vanished_is_queued_again(api_settings, tmp_path):
    settings = api_settings()
    store = JobStore(settings.jobs_db)
    runner = JobRunner(store, settings, ServiceMetrics())
    row = store.create(BatchJobRequest(input_csv="x.csv", output_uri="y.csv", model="colours"), "local", None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert store.transition(row.id, JobState.QUEUED, JobState.RUNNING, attempts=1, pid=dead.pid)

    runner.settings = settings.model_copy(update={"max_running_jobs": 0})  # observe the requeue only
    runner.tick()
    again = store.get(row.id)
    assert (again.state, again.attempts, again.pid) == ("queued", 1, None)


def test_job_reads_and_writes_gcs(make_client, gcs_emulator, tmp_path, registry_root):
    root = f"gs://bucket/jobs-{uuid.uuid4().hex[:8]}"
    rows = []
    for i, colour in enumerate(["red", "green", "blue"]):
        storage.write_bytes(f"{root}/images/{i}.png", colour_image(colour, 700 + i))
        rows.append(f"{root}/images/{i}.png,{colour}")
    storage.write_text(f"{root}/in.csv", "image_uri,truth\n" + "\n".join(rows) + "\n")
    client = make_client(allowed_read_prefixes=[f"{root}/"], allowed_write_prefixes=[f"{root}/out/"])
    r = client.post("/v1/batch-jobs", json={"input_csv": f"{root}/in.csv", "output_uri": f"{root}/out/p.csv"})
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job
    out = list(csv.DictReader(io.StringIO(storage.read_text(f"{root}/out/p.csv"))))
    assert len(out) == 3 and all(row["error"] == "" for row in out)
    assert {row["model_version"] for row in out} == {
        str(ModelRegistry(str(registry_root)).alias("colours", "production"))
    }


def test_a_failed_job_reports_the_pipelines_own_reason(make_client, tmp_path):
    (tmp_path / "in").mkdir()
    source = write_csv(tmp_path / "in" / "in.csv", ["path"], [["a.png"]])
    client = make_client()
    job = client.post("/v1/batch-jobs", json={"input_csv": str(source), "output_uri": str(tmp_path / "o.csv")}).json()
    job = _wait(client, job["id"], {"succeeded", "failed"})
    assert job["state"] == "failed" and "no 'image_uri' column" in job["error"], job
