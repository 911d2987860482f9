"""Runs queued batch jobs, at most N at once: locally, or as Dataflow jobs.

Locally, each job is ``python -m beam_pipelines.batch`` in its own process group, so a
slow job never blocks the API and a cancel can stop the whole pipeline. With
``IMGCLF_JOB_RUNNER=dataflow`` a job launches the batch Flex Template instead and is
followed through the Dataflow API. With several
uvicorn workers, only the one holding ``scheduler.lock`` starts and reaps jobs. After an
API restart, a job whose process is still running is adopted; one whose process is
gone without a summary is queued again (up to ``MAX_ATTEMPTS``), since a rerun
rewrites its output from scratch.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from api.dataflow import DataflowLauncher
from api.jobs import JobRow, JobStore
from api.metrics import ServiceMetrics
from api.schemas import BatchJobRequest, JobState
from api.settings import ApiSettings
from beam_pipelines.transforms import output_files
from models import storage

log = logging.getLogger("imgclf.api.jobs")
MAX_ATTEMPTS = 3
DATAFLOW_POLL_S = 10.0
_PROGRESS = re.compile(rb"classified (\d+) images")


class JobRunner:
    def __init__(self, store: JobStore, settings: ApiSettings, metrics: ServiceMetrics, poll_s: float = 0.5):
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.poll_s = poll_s
        self.jobs_dir = Path(settings.jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._children: dict[str, subprocess.Popen] = {}
        self._lock_file = None
        self._dataflow: DataflowLauncher | None = None
        self._last_poll: dict[str, float] = {}

    @property
    def dataflow(self) -> DataflowLauncher:
        if self._dataflow is None:
            self._dataflow = DataflowLauncher(self.settings)
        return self._dataflow

    # ------------------------------------------------------------ files of a job

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def progress(self, job_id: str) -> int | None:
        """Images classified so far, from the pipeline's progress lines in the job's log."""
        path = self.job_dir(job_id) / "log.txt"
        try:
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 65536))
                found = _PROGRESS.findall(f.read())
        except OSError:
            return None
        return int(found[-1]) if found else 0

    def command(self, job_id: str, request: BatchJobRequest) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "beam_pipelines.batch",
            "--input",
            request.input_csv,
            "--output",
            request.output_uri,
            "--output_format",
            request.format.value,
            "--model_root",
            self.settings.model_root,
            "--runtime",
            self.settings.runtime,
            "--summary_file",
            str(self.job_dir(job_id) / "summary.json"),
            "--progress_every",
            "100",
            # Every row is read on the caller's behalf: the same allow-list as single requests.
            "--allowed_read_prefixes",
            ",".join(self.settings.allowed_read_prefixes),
            "--protected_locations",
            ",".join(self.settings.internal_stores().values()),
        ]
        for flag, value in (
            ("--model", request.model),
            ("--alias", request.alias),
            ("--model_version", request.version),
        ):
            if value is not None:
                cmd += [flag, str(value)]
        return cmd

    # ------------------------------------------------------------ the loop

    async def run_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a database hiccup must not stop job processing for good
                log.exception("job runner tick failed")
            await asyncio.sleep(self.poll_s)

    def _is_scheduler(self) -> bool:
        if self._lock_file is not None:
            return True
        f = open(self.jobs_dir / "scheduler.lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._lock_file = f
        return True

    def tick(self) -> None:
        if not self._is_scheduler():
            return
        running_rows = self.store.in_state(JobState.RUNNING)
        for row in running_rows:
            self._reap(row)
        running_ids = {row.id for row in running_rows}
        for job_id, child in list(self._children.items()):  # cancelled jobs: collect their exit
            if job_id not in running_ids and child.poll() is not None:
                del self._children[job_id]
        running = self.store.count(JobState.RUNNING)
        for row in self.store.in_state(JobState.QUEUED):
            if running >= self.settings.max_running_jobs:
                break
            if self._start(row):
                running += 1

    def _start(self, row: JobRow) -> bool:
        if not self.store.transition(row.id, JobState.QUEUED, JobState.RUNNING, attempts=row.attempts + 1):
            return False  # cancelled meanwhile
        if row.runner == "dataflow":
            return self._start_on_dataflow(row)
        folder = self.job_dir(row.id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").unlink(missing_ok=True)
        request = BatchJobRequest.model_validate_json(row.request)
        with open(folder / "log.txt", "ab") as out:
            child = subprocess.Popen(
                self.command(row.id, request), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._children[row.id] = child
        self.store.set(row.id, pid=child.pid)
        log.info("job %s started (pid %d, attempt %d)", row.id, child.pid, row.attempts + 1)
        return True

    def _start_on_dataflow(self, row: JobRow) -> bool:
        try:
            dataflow_id = self.dataflow.launch(row.id, BatchJobRequest.model_validate_json(row.request))
        except Exception as e:  # a refused launch is the job's failure, reported on the job
            self.store.transition(row.id, JobState.RUNNING, JobState.FAILED, error=f"Dataflow launch failed: {e}"[:500])
            self.metrics.jobs.labels(JobState.FAILED.value).inc()
            return False
        self.store.set(row.id, external_id=dataflow_id)
        log.info("job %s launched on Dataflow as %s", row.id, dataflow_id)
        return True

    def _reap_dataflow(self, row: JobRow) -> None:
        if time.monotonic() - self._last_poll.get(row.id, 0) < DATAFLOW_POLL_S or not row.external_id:
            return
        self._last_poll[row.id] = time.monotonic()
        status = self.dataflow.status(row.external_id)
        if status.state is JobState.RUNNING:
            return
        if status.state is JobState.SUCCEEDED:
            output = BatchJobRequest.model_validate_json(row.request).output_uri
            files = [output] if storage.exists(output) else output_files(output, 0)
            done = self.store.transition(
                row.id, JobState.RUNNING, JobState.SUCCEEDED, ok=status.ok, errors=status.errors, output_files=files
            )
        else:
            done = self.store.transition(row.id, JobState.RUNNING, JobState.FAILED, error=status.message)
        if done:
            self.metrics.jobs.labels(status.state.value if status.state is JobState.SUCCEEDED else "failed").inc()
            self._last_poll.pop(row.id, None)

    def _reap(self, row: JobRow) -> None:
        if row.runner == "dataflow":
            self._reap_dataflow(row)
            return
        child = self._children.get(row.id)
        if child is not None:
            returncode = child.poll()
            if returncode is None:
                return
            del self._children[row.id]
            self._finish(row, returncode)
        elif row.pid is None or not _alive(row.pid, row.id):
            self._finish(row, None)  # its process is gone, and not ours to wait for: e.g. an API restart

    def _finish(self, row: JobRow, returncode: int | None) -> None:
        summary_path = self.job_dir(row.id) / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            if self.store.transition(
                row.id,
                JobState.RUNNING,
                JobState.SUCCEEDED,
                ok=summary["ok"],
                errors=summary["error"],
                output_files=summary["output_files"],
            ):
                self.metrics.jobs.labels(JobState.SUCCEEDED.value).inc()
                log.info("job %s succeeded: %d ok, %d errors", row.id, summary["ok"], summary["error"])
            return
        if returncode is None and row.attempts < MAX_ATTEMPTS:
            if self.store.transition(row.id, JobState.RUNNING, JobState.QUEUED, pid=None, started_at=None):
                log.warning("job %s lost its worker process; queued again", row.id)
            return
        reason = self._failure_reason(row.id, returncode)
        if self.store.transition(row.id, JobState.RUNNING, JobState.FAILED, error=reason):
            self.metrics.jobs.labels(JobState.FAILED.value).inc()
            log.warning("job %s failed: %s", row.id, reason)

    def _failure_reason(self, job_id: str, returncode: int | None) -> str:
        try:
            lines = (self.job_dir(job_id) / "log.txt").read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        said = [line for line in lines if line.startswith("error:")]
        if said:
            return said[-1].removeprefix("error:").strip()[:500]
        if returncode is None:
            return f"the worker process disappeared {MAX_ATTEMPTS} times"
        return f"the batch pipeline exited with status {returncode}; see the job's log"

    def cancel(self, row: JobRow) -> bool:
        """Cancels a queued or running job; False if it had already finished."""
        if not self.store.transition(row.id, (JobState.QUEUED, JobState.RUNNING), JobState.CANCELLED):
            return False
        external_id = self.store.get(row.id).external_id
        if row.runner == "dataflow" and external_id:
            self.dataflow.cancel(external_id)
        pid = row.pid if row.pid is not None else self.store.get(row.id).pid
        if pid is not None and _alive(pid, row.id):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.metrics.jobs.labels(JobState.CANCELLED.value).inc()
        return True

    def close(self) -> None:
        """Leaves running jobs running (they are adopted after a restart); releases the lock."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _alive(pid: int, job_id: str) -> bool:
    """Whether ``pid`` is still this job's pipeline (not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return job_id.encode() in f.read()
    except OSError:
        return True  # no /proc: trust kill(0)
