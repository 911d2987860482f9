"""The Dataflow REST API (v1b3), as far as batch jobs need it: launch, state, counters, cancel.

Through ``google-auth``'s AuthorizedSession, with the service's own credentials (Workload
Identity on GKE). The endpoint is a setting so a regional endpoint, or a stand-in on
loopback, can take its place. What to launch is built in ``beam_pipelines.flex_templates``.
"""

from __future__ import annotations

from api.schemas import JobState
from api.settings import ApiSettings

# Dataflow's job states, as the API's job states. Others (pending, queued, running, draining...) mean running.
_FINAL = {
    "JOB_STATE_DONE": JobState.SUCCEEDED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
    "JOB_STATE_DRAINED": JobState.CANCELLED,
    "JOB_STATE_UPDATED": JobState.SUCCEEDED,
}
GOOGLE_ENDPOINT = "https://dataflow.googleapis.com"


class DataflowClient:
    def __init__(self, settings: ApiSettings, session=None):
        if not settings.dataflow_project:
            raise ValueError("the dataflow job runner needs IMGCLF_DATAFLOW_PROJECT")
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

    def launch(self, body: dict) -> str:
        """Posts a ``flexTemplates.launch`` body; returns the Dataflow job id."""
        response = self.session.post(f"{self.base}/flexTemplates:launch", json=body, timeout=60)
        response.raise_for_status()
        return response.json()["job"]["id"]

    def state(self, dataflow_id: str) -> JobState:
        response = self.session.get(f"{self.base}/jobs/{dataflow_id}", timeout=30)
        response.raise_for_status()
        return _FINAL.get(response.json().get("currentState", ""), JobState.RUNNING)

    def counts(self, dataflow_id: str, tentative: bool = False) -> tuple[int, int]:
        """The pipeline's records_ok / records_error counters: committed, or tentative while it runs."""
        response = self.session.get(f"{self.base}/jobs/{dataflow_id}/metrics", timeout=30)
        response.raise_for_status()
        totals = {"records_ok": 0, "records_error": 0}
        for metric in response.json().get("metrics", []):
            name = metric.get("name", {})
            is_tentative = bool(name.get("context", {}).get("tentative"))
            if name.get("origin") == "user" and name.get("name") in totals and is_tentative is tentative:
                totals[name["name"]] += int(metric.get("scalar", 0))
        return totals["records_ok"], totals["records_error"]

    def cancel(self, dataflow_id: str) -> None:
        response = self.session.put(
            f"{self.base}/jobs/{dataflow_id}", json={"requestedState": "JOB_STATE_CANCELLED"}, timeout=30
        )
        response.raise_for_status()
