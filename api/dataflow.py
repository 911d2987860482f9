"""Batch jobs on Dataflow: launch the batch Flex Template, poll its state, cancel it.

The Dataflow REST API (v1b3) through ``google-auth``'s AuthorizedSession, with the
service's own credentials (Workload Identity on GKE). The endpoint is a setting so a
regional endpoint, or a stand-in on loopback, can take its place.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.schemas import BatchJobRequest, JobState
from api.settings import ApiSettings
from models import storage

# Dataflow's job states, as the API's job states. Others (pending, queued, running, draining...) mean running.
_FINAL = {
    "JOB_STATE_DONE": JobState.SUCCEEDED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
    "JOB_STATE_DRAINED": JobState.CANCELLED,
    "JOB_STATE_UPDATED": JobState.SUCCEEDED,
}
GOOGLE_ENDPOINT = "https://dataflow.googleapis.com"


@dataclass
class DataflowStatus:
    state: JobState
    ok: int = 0
    errors: int = 0
    message: str | None = None


class DataflowLauncher:
    def __init__(self, settings: ApiSettings, session=None):
        if not settings.dataflow_project or not settings.dataflow_template:
            raise ValueError("the dataflow job runner needs IMGCLF_DATAFLOW_PROJECT and IMGCLF_DATAFLOW_TEMPLATE")
        if not settings.model_root.startswith("gs://"):
            raise ValueError("Dataflow workers cannot read a local registry: set IMGCLF_MODEL_ROOT to a gs:// prefix")
        self.settings = settings
        self.base = (
            f"{settings.dataflow_endpoint.rstrip('/')}/v1b3/projects/{settings.dataflow_project}"
            f"/locations/{settings.dataflow_region}"
        )
        self._session = session

    @property
    def session(self):
        if self._session is None:
            import google.auth
            from google.auth.credentials import AnonymousCredentials
            from google.auth.transport.requests import AuthorizedSession

            if self.settings.dataflow_endpoint == GOOGLE_ENDPOINT:
                credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
            else:  # a stand-in: never send real credentials elsewhere
                credentials = AnonymousCredentials()
            self._session = AuthorizedSession(credentials)
        return self._session

    def parameters(self, request: BatchJobRequest) -> dict[str, str]:
        """The Flex Template's parameters (templates/batch/metadata.json) for a job."""
        params = {
            "input": request.input_csv,
            "output": request.output_uri,
            "output_format": request.format.value,
            "model_root": self.settings.model_root,
            # Rows are read on the caller's behalf there too: the same allow-list as locally.
            "allowed_read_prefixes": ",".join(self.settings.allowed_read_prefixes),
        }
        cloud_stores = [  # the pipeline protects its registry itself; local folders mean nothing there
            location
            for location in self.settings.internal_stores().values()
            if not storage.is_local(location) and location != self.settings.model_root
        ]
        if cloud_stores:
            params["protected_locations"] = ",".join(cloud_stores)
        for name, value in (("model", request.model), ("alias", request.alias), ("model_version", request.version)):
            if value is not None:
                params[name] = str(value)
        return params

    def launch(self, job_id: str, request: BatchJobRequest) -> str:
        """Starts the template; returns the Dataflow job id."""
        body = {
            "launchParameter": {
                "jobName": f"imgclf-batch-{job_id[:8]}",
                "containerSpecGcsPath": self.settings.dataflow_template,
                "parameters": self.parameters(request),
                "labels": {"imgclf-job": job_id},
            }
        }
        response = self.session.post(f"{self.base}/flexTemplates:launch", json=body, timeout=60)
        response.raise_for_status()
        return response.json()["job"]["id"]

    def status(self, dataflow_id: str) -> DataflowStatus:
        response = self.session.get(f"{self.base}/jobs/{dataflow_id}", timeout=30)
        response.raise_for_status()
        state = _FINAL.get(response.json().get("currentState", ""), JobState.RUNNING)
        if state is not JobState.SUCCEEDED:
            message = None if state is JobState.RUNNING else f"Dataflow job {dataflow_id} ended {state.value}"
            return DataflowStatus(state, message=message)
        return DataflowStatus(state, *self._counts(dataflow_id))

    def _counts(self, dataflow_id: str) -> tuple[int, int]:
        """The pipeline's records_ok / records_error counters from the job's metrics."""
        response = self.session.get(f"{self.base}/jobs/{dataflow_id}/metrics", timeout=30)
        response.raise_for_status()
        totals = {"records_ok": 0, "records_error": 0}
        for metric in response.json().get("metrics", []):
            name = metric.get("name", {})
            if (
                name.get("origin") == "user"
                and name.get("name") in totals
                and not name.get("context", {}).get("tentative")
            ):
                totals[name["name"]] += int(metric.get("scalar", 0))
        return totals["records_ok"], totals["records_error"]

    def cancel(self, dataflow_id: str) -> None:
        response = self.session.put(
            f"{self.base}/jobs/{dataflow_id}", json={"requestedState": "JOB_STATE_CANCELLED"}, timeout=30
        )
        response.raise_for_status()
