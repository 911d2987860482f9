"""Batch jobs with IMGCLF_JOB_RUNNER=dataflow, against a stand-in for the Dataflow REST API on loopback.

There is no Google account here, so no real Dataflow job runs: the stand-in checks what
we send (the Flex Template launch, state polls, the cancel) and answers as Dataflow's
v1b3 API documents. The registry lives on the GCS emulator, as Dataflow requires.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api import job_backends
from models.registry import ModelRegistry


class FakeDataflow(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, dict | None]] = []
    polls_until_done = 2
    final_state = "JOB_STATE_DONE"

    def _reply(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def do_POST(self):
        self.calls.append(("POST", self.path, self._body()))
        self._reply({"job": {"id": "df-123", "currentState": "JOB_STATE_QUEUED"}})

    def do_GET(self):
        self.calls.append(("GET", self.path, None))
        if self.path.endswith("/metrics"):
            self._reply(
                {
                    "metrics": [
                        {"name": {"origin": "user", "name": "records_ok", "context": {"step": "s1"}}, "scalar": 5},
                        {"name": {"origin": "user", "name": "records_error", "context": {"step": "s1"}}, "scalar": 2},
                        {
                            "name": {"origin": "user", "name": "records_ok", "context": {"tentative": "true"}},
                            "scalar": 5,
                        },
                    ]
                }
            )
            return
        polls = sum(1 for method, path, _ in self.calls if method == "GET" and path.endswith("/jobs/df-123"))
        self._reply(
            {"id": "df-123", "currentState": self.final_state if polls > self.polls_until_done else "JOB_STATE_RUNNING"}
        )

    def do_PUT(self):
        self.calls.append(("PUT", self.path, self._body()))
        self._reply({"id": "df-123", "requestedState": "JOB_STATE_CANCELLED"})

    def log_message(self, *args):
        pass


@pytest.fixture
def dataflow_api(monkeypatch):
    FakeDataflow.calls, FakeDataflow.polls_until_done = [], 2
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDataflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(job_backends, "DATAFLOW_POLL_S", 0.0)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def gcs_registry(gcs_emulator, registry_root):
    root = "gs://bucket/dataflow-registry"
    local = ModelRegistry(str(registry_root)).resolve("colours")
    remote = ModelRegistry(root)
    if remote.alias("colours", "production") is None:
        remote.set_alias("colours", "production", remote.register(local.card, local.saved_model_uri))
    return root


def _dataflow_client(make_client, endpoint, root, **settings):
    defaults = {
        "model_root": root,
        "job_runner": "dataflow",
        "dataflow_project": "proj",
        "dataflow_region": "europe-west1",
        "dataflow_template": "gs://bucket/templates/batch.json",
        "dataflow_image": "europe-west1-docker.pkg.dev/proj/imgclf/pipeline-cpu:1",
        "dataflow_endpoint": endpoint,
        "allowed_read_prefixes": ["gs://bucket/batch/"],
        "allowed_write_prefixes": ["gs://bucket/batch/"],
    }
    return make_client(**{**defaults, **settings})


def _wait(client, job_id, states):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(f"/v1/batch-jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(job)


def test_a_job_launches_the_flex_template_and_reports_dataflow_counts(make_client, dataflow_api, gcs_registry):
    client = _dataflow_client(make_client, dataflow_api, gcs_registry)
    r = client.post(
        "/v1/batch-jobs",
        json={"input_csv": "gs://bucket/batch/in.csv", "output_uri": "gs://bucket/batch/out.csv", "format": "jsonl"},
    )
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded" and job["runner"] == "dataflow" and job["external_id"] == "df-123"
    assert job["counts"] == {"done": 7, "ok": 5, "errors": 2}, "tentative metrics are not counted"

    method, path, body = FakeDataflow.calls[0]
    assert (method, path) == ("POST", "/v1b3/projects/proj/locations/europe-west1/flexTemplates:launch")
    launch = body["launchParameter"]
    assert launch["containerSpecGcsPath"] == "gs://bucket/templates/batch.json"
    assert launch["parameters"] == {
        "input": "gs://bucket/batch/in.csv",
        "output": "gs://bucket/batch/out.csv",
        "output_format": "jsonl",
        "model_root": gcs_registry,
        "model": "colours",
        "runtime": "auto",
        "allowed_read_prefixes": "gs://bucket/batch/",
        "sdk_container_image": "europe-west1-docker.pkg.dev/proj/imgclf/pipeline-cpu:1",
    }
    assert launch["environment"] == {"additionalUserLabels": {"imgclf-job": job["id"]}}, "Dataflow's default workers"
    template = json.load(open("templates/batch/metadata.json"))
    assert set(launch["parameters"]) - {"sdk_container_image"} <= {p["name"] for p in template["parameters"]}


def test_gpu_settings_launch_l4_workers_on_the_pipeline_image(make_client, dataflow_api, gcs_registry):
    image = "europe-west1-docker.pkg.dev/proj/imgclf/pipeline-gpu:1"
    client = _dataflow_client(
        make_client,
        dataflow_api,
        gcs_registry,
        dataflow_gpu=True,
        dataflow_image=image,
        dataflow_max_workers=4,
        dataflow_temp_location="gs://bucket/tmp",
    )
    body = {"input_csv": "gs://bucket/batch/in.csv", "output_uri": "gs://bucket/batch/out.csv"}
    job = client.post("/v1/batch-jobs", json=body).json()
    _wait(client, job["id"], {"succeeded"})
    launch = FakeDataflow.calls[0][2]["launchParameter"]
    assert launch["parameters"]["sdk_container_image"] == image
    assert launch["environment"] == {
        "tempLocation": "gs://bucket/tmp",
        "machineType": "g2-standard-4",
        "maxWorkers": 4,
        "additionalExperiments": ["worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"],
        "additionalUserLabels": {"imgclf-job": job["id"]},
    }


def test_running_dataflow_jobs_show_their_tentative_counts(make_client, dataflow_api, gcs_registry):
    FakeDataflow.polls_until_done = 10_000
    client = _dataflow_client(make_client, dataflow_api, gcs_registry)
    body = {"input_csv": "gs://bucket/batch/in.csv", "output_uri": "gs://bucket/batch/out.csv"}
    job = client.post("/v1/batch-jobs", json=body).json()
    deadline = time.monotonic() + 30
    while (seen := client.get(f"/v1/batch-jobs/{job['id']}").json())["counts"]["done"] == 0:
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    assert seen["state"] == "running" and seen["counts"] == {"done": 5, "ok": 5, "errors": 0}


def test_cancelling_a_dataflow_job_asks_dataflow_to_cancel_it(make_client, dataflow_api, gcs_registry):
    FakeDataflow.polls_until_done = 10_000
    client = _dataflow_client(make_client, dataflow_api, gcs_registry)
    body = {"input_csv": "gs://bucket/batch/in.csv", "output_uri": "gs://bucket/batch/out.csv"}
    job = client.post("/v1/batch-jobs", json=body).json()
    _wait(client, job["id"], {"running"})
    deadline = time.monotonic() + 10
    while client.get(f"/v1/batch-jobs/{job['id']}").json()["external_id"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.delete(f"/v1/batch-jobs/{job['id']}").json()["state"] == "cancelled"
    assert (
        "PUT",
        "/v1b3/projects/proj/locations/europe-west1/jobs/df-123",
        {"requestedState": "JOB_STATE_CANCELLED"},
    ) in (FakeDataflow.calls)


def test_a_job_without_the_pipeline_image_fails_saying_which_setting_is_missing(
    make_client, dataflow_api, gcs_registry
):
    client = _dataflow_client(make_client, dataflow_api, gcs_registry, dataflow_image=None)
    body = {"input_csv": "gs://bucket/batch/in.csv", "output_uri": "gs://bucket/batch/out.csv"}
    job = _wait(client, client.post("/v1/batch-jobs", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "failed" and "IMGCLF_DATAFLOW_IMAGE" in job["error"], job
    assert FakeDataflow.calls == [], "nothing was launched"
