"""Runs queued batch jobs, at most N at once, on a backend (``job_backends``): local or Dataflow.

The runner owns the bookkeeping both share: the queue, the limit on running jobs, the
state changes and their metrics, counts so far on running jobs. With several uvicorn
workers, only the one holding ``scheduler.lock`` starts and follows jobs. After an API
restart, a local job whose process is still running is adopted; one whose process is
gone without a result is queued again (up to ``MAX_ATTEMPTS``), since a rerun rewrites
its output from scratch.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
from pathlib import Path

from api.job_backends import DataflowBackend, JobBackend, LocalBackend
from api.jobs import JobRow, JobStore
from api.metrics import ServiceMetrics
from api.schemas import BatchJobRequest, JobState
from api.settings import ApiSettings

log = logging.getLogger("imgclf.api.jobs")
MAX_ATTEMPTS = 3


class JobRunner:
    def __init__(self, store: JobStore, settings: ApiSettings, metrics: ServiceMetrics, poll_s: float = 0.5):
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.poll_s = poll_s
        self.jobs_dir = Path(settings.jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = None
        self._backends: dict[str, JobBackend] = {"local": LocalBackend(settings)}

    def backend(self, name: str) -> JobBackend:
        if name not in self._backends:  # Dataflow's only when a job asks for it: it needs its settings
            self._backends[name] = DataflowBackend(self.settings)
        return self._backends[name]

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
        for row in self.store.in_state(JobState.RUNNING):
            try:
                self._follow(row)
            except Exception:  # one job's backend failing to answer must not hold up the others
                log.exception("could not follow job %s", row.id)
        running = self.store.count(JobState.RUNNING)
        for row in self.store.in_state(JobState.QUEUED):
            if running >= self.settings.max_running_jobs:
                break
            if self._start(row):
                running += 1

    def _start(self, row: JobRow) -> bool:
        if not self.store.transition(row.id, JobState.QUEUED, JobState.RUNNING, attempts=row.attempts + 1):
            return False  # cancelled meanwhile
        try:
            where = self.backend(row.runner).start(row.id, BatchJobRequest.model_validate_json(row.request))
        except Exception as e:  # a refused launch is the job's failure, reported on the job
            self._end(row, JobState.FAILED, error=f"could not start on {row.runner}: {e}"[:500])
            return False
        self.store.set(row.id, **where)
        log.info("job %s started on %s (%s, attempt %d)", row.id, row.runner, where, row.attempts + 1)
        return True

    def _follow(self, row: JobRow) -> None:
        status = self.backend(row.runner).status(row)
        if status.lost:
            if row.attempts < MAX_ATTEMPTS:
                values = {"pid": None, "started_at": None, "ok": 0, "errors": 0}
                if self.store.transition(row.id, JobState.RUNNING, JobState.QUEUED, **values):
                    log.warning("job %s lost its worker process; queued again", row.id)
            else:
                self._end(row, JobState.FAILED, error=f"the worker process disappeared {MAX_ATTEMPTS} times")
        elif status.state is JobState.RUNNING:
            if (status.ok, status.errors) != (row.ok, row.errors):
                self.store.set(row.id, ok=status.ok, errors=status.errors)
        elif status.state is JobState.SUCCEEDED:
            self._end(row, status.state, ok=status.ok, errors=status.errors, output_files=status.output_files)
        else:
            self._end(row, JobState.FAILED, error=status.error)

    def _end(self, row: JobRow, state: JobState, **values) -> None:
        if self.store.transition(row.id, JobState.RUNNING, state, **values):
            self.metrics.jobs.labels(state.value).inc()
            log.log(
                logging.INFO if state is JobState.SUCCEEDED else logging.WARNING,
                "job %s %s: %s",
                row.id,
                state.value,
                values.get("error") or f"{values.get('ok')} ok, {values.get('errors')} errors",
            )

    def cancel(self, row: JobRow) -> bool:
        """Cancels a queued or running job; False if it had already finished."""
        if not self.store.transition(row.id, (JobState.QUEUED, JobState.RUNNING), JobState.CANCELLED):
            return False
        self.backend(row.runner).cancel(self.store.get(row.id))  # with the pid / external id set since
        self.metrics.jobs.labels(JobState.CANCELLED.value).inc()
        return True

    def close(self) -> None:
        """Leaves running jobs running (they are adopted after a restart); releases the lock."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
