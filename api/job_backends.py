"""Where a batch job runs: a local process, or a Dataflow job. One interface, two backends.

Each backend starts a job, reports its status as data (``JobStatus``: counts so far, the
result, or why it failed) and cancels it; ``job_runner.JobRunner`` does the queueing
and bookkeeping for both. Both run the batch pipeline with the same flags
(``batch_job_flags``): locally as ``python -m beam_pipelines.batch``, on Dataflow as the
batch Flex Template's parameters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from api.dataflow import DataflowClient
from api.jobs import JobRow
from api.schemas import BatchJobRequest, JobState
from api.settings import ApiSettings
from beam_pipelines import run_status
from beam_pipelines.flex_templates import Launch, Workers, parameters
from beam_pipelines.transforms import output_files
from models import storage

DATAFLOW_POLL_S = 10.0


@dataclass
class JobStatus:
    state: JobState  # RUNNING, SUCCEEDED or FAILED
    ok: int = 0
    errors: int = 0
    output_files: list[str] = field(default_factory=list)
    error: str | None = None
    lost: bool = False  # RUNNING no more, with no result: the process vanished (e.g. the host restarted)


class JobBackend(Protocol):
    def start(self, job_id: str, request: BatchJobRequest) -> dict:
        """Starts the job; returns what to record on it to find it again (``pid`` or ``external_id``)."""

    def status(self, row: JobRow) -> JobStatus: ...

    def cancel(self, row: JobRow) -> None: ...


def batch_job_flags(request: BatchJobRequest, settings: ApiSettings, cloud: bool = False) -> dict[str, object]:
    """The batch pipeline's flags for a job; ``cloud``: for workers that cannot see this host's files."""
    stores = settings.internal_stores().values()
    if cloud:  # the pipeline protects its registry itself; local folders mean nothing there
        stores = [s for s in stores if not storage.is_local(s) and s != settings.model_root]
    return {
        "input": request.input_csv,
        "output": request.output_uri,
        "output_format": request.format.value,
        "model_root": settings.model_root,
        "model": request.model,
        "alias": request.alias,
        "model_version": request.version,
        "runtime": settings.runtime,
        # Rows are read on the caller's behalf: the same allow-list as single requests.
        "allowed_read_prefixes": list(settings.allowed_read_prefixes),
        "protected_locations": list(stores) or None,
    }


class LocalBackend:
    """Each job is ``python -m beam_pipelines.batch`` in its own process group, followed
    through its status file (``beam_pipelines/run_status.py``); its output goes to ``log.txt``."""

    def __init__(self, settings: ApiSettings):
        self.settings = settings
        self.jobs_dir = Path(settings.jobs_dir)
        self._children: dict[str, subprocess.Popen] = {}

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def command(self, job_id: str, request: BatchJobRequest) -> list[str]:
        flags = {
            **batch_job_flags(request, self.settings),
            "summary_file": self.job_dir(job_id) / "status.json",
            "progress_every": 100,
        }
        argv = [sys.executable, "-m", "beam_pipelines.batch"]
        for name, value in parameters("batch", flags).items():
            argv += [f"--{name}", value]
        return argv

    def start(self, job_id: str, request: BatchJobRequest) -> dict:
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "status.json").unlink(missing_ok=True)  # an earlier attempt's
        with open(folder / "log.txt", "ab") as out:
            child = subprocess.Popen(
                self.command(job_id, request), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._children[job_id] = child
        return {"pid": child.pid}

    def status(self, row: JobRow) -> JobStatus:
        child = self._children.get(row.id)
        returncode = None
        if child is not None:
            returncode = child.poll()
            ended = returncode is not None
            if ended:
                del self._children[row.id]
        else:  # not started by this process, e.g. before an API restart
            ended = row.pid is None or not _alive(row.pid, row.id)
        said = run_status.read(self.job_dir(row.id) / "status.json") or {}
        if said.get("state") == run_status.SUCCEEDED:
            return JobStatus(JobState.SUCCEEDED, said["ok"], said["error"], said["output_files"])
        if said.get("state") == run_status.FAILED:
            return JobStatus(JobState.FAILED, error=said["reason"][:500])
        if not ended:
            return JobStatus(JobState.RUNNING, said.get("ok", 0), said.get("error", 0))
        if returncode is None:
            return JobStatus(JobState.RUNNING, lost=True)
        return JobStatus(
            JobState.FAILED, error=f"the batch pipeline exited with status {returncode} and no result; see its log"
        )

    def cancel(self, row: JobRow) -> None:
        if row.pid is None or not _alive(row.pid, row.id):
            return
        try:
            os.killpg(row.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        child = self._children.pop(row.id, None)
        if child is not None:  # collect its exit whenever it comes, so no zombie is left
            threading.Thread(target=child.wait, daemon=True).start()


class DataflowBackend:
    """Each job is a launch of the batch Flex Template, polled every ``DATAFLOW_POLL_S``."""

    def __init__(self, settings: ApiSettings, client: DataflowClient | None = None):
        if not settings.dataflow_template or not settings.dataflow_image:
            raise ValueError(
                "the dataflow job runner needs IMGCLF_DATAFLOW_TEMPLATE and IMGCLF_DATAFLOW_IMAGE "
                "(the template's spec and the pipeline image it was built from, which the workers run)"
            )
        if not settings.model_root.startswith("gs://"):
            raise ValueError("Dataflow workers cannot read a local registry: set IMGCLF_MODEL_ROOT to a gs:// prefix")
        self.settings = settings
        self.client = client or DataflowClient(settings)
        self._last: dict[str, tuple[float, JobStatus]] = {}

    def launch(self, job_id: str, request: BatchJobRequest) -> Launch:
        s = self.settings
        flags = {**batch_job_flags(request, s, cloud=True), "sdk_container_image": s.dataflow_image}
        return Launch(
            template="batch",
            spec=s.dataflow_template,
            job_name=f"imgclf-batch-{job_id[:8]}",
            project=s.dataflow_project,
            region=s.dataflow_region,
            parameters=parameters("batch", flags),
            workers=Workers(gpu=s.dataflow_gpu, max_workers=s.dataflow_max_workers),
            temp_location=s.dataflow_temp_location,
            service_account=s.dataflow_service_account,
            labels={"imgclf-job": job_id},
        )

    def start(self, job_id: str, request: BatchJobRequest) -> dict:
        return {"external_id": self.client.launch(self.launch(job_id, request).request())}

    def status(self, row: JobRow) -> JobStatus:
        polled, last = self._last.get(row.id, (0.0, None))
        if last is not None and time.monotonic() - polled < DATAFLOW_POLL_S:
            return last
        dataflow_id = row.external_id
        state = self.client.state(dataflow_id)
        if state is JobState.RUNNING:
            status = JobStatus(state, *self.client.counts(dataflow_id, tentative=True))
        elif state is JobState.SUCCEEDED:
            output = BatchJobRequest.model_validate_json(row.request).output_uri
            files = [output] if storage.exists(output) else output_files(output, 0)
            status = JobStatus(state, *self.client.counts(dataflow_id), files)
        else:
            status = JobStatus(JobState.FAILED, error=f"Dataflow job {dataflow_id} ended {state.value}")
        if status.state is JobState.RUNNING:
            self._last[row.id] = (time.monotonic(), status)
        else:
            self._last.pop(row.id, None)
        return status

    def cancel(self, row: JobRow) -> None:
        if row.external_id:
            self.client.cancel(row.external_id)


def _alive(pid: int, job_id: str) -> bool:
    """Whether ``pid`` is still this job's pipeline (not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return job_id.encode() in f.read()
    except OSError:
        return True  # no /proc: trust kill(0)
