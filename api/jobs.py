"""Batch jobs as rows in a database, so they outlive the process that accepted them.

SQLite by default (``IMGCLF_JOBS_DB``); any SQLAlchemy URL works, so several API
replicas can share one PostgreSQL. State changes are single UPDATEs guarded by the
expected old state, so two workers never both start or finish the same job.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Integer, String, Text, create_engine, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from api.schemas import BatchJob, BatchJobRequest, JobCounts, JobState


class _Base(DeclarativeBase):
    pass


class JobRow(_Base):
    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    request: Mapped[str] = mapped_column(Text)
    runner: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(64))  # sha256 of the API key that submitted it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    pid: Mapped[int | None] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(128))
    ok: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    output_files: Mapped[str] = mapped_column(Text, default="[]")
    error: Mapped[str | None] = mapped_column(Text)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class JobStore:
    def __init__(self, url: str):
        parsed = make_url(url)
        if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, connect_args={"timeout": 30} if parsed.drivername == "sqlite" else {})
        _Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._session()

    def create(self, request: BatchJobRequest, runner: str, owner: str | None) -> JobRow:
        row = JobRow(
            id=str(uuid.uuid4()),
            state=JobState.QUEUED.value,
            request=request.model_dump_json(),
            runner=runner,
            owner=owner,
            created_at=_now(),
            attempts=0,
            ok=0,
            errors=0,
            output_files="[]",
        )
        with self.session() as s, s.begin():
            s.add(row)
        return row

    def get(self, job_id: str) -> JobRow | None:
        with self.session() as s:
            return s.get(JobRow, job_id)

    def list(self, limit: int = 100) -> list[JobRow]:
        with self.session() as s:
            return list(s.scalars(select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)))

    def in_state(self, *states: JobState) -> list[JobRow]:
        with self.session() as s:
            query = select(JobRow).where(JobRow.state.in_([st.value for st in states])).order_by(JobRow.created_at)
            return list(s.scalars(query))

    def count(self, state: JobState) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(JobRow).where(JobRow.state == state.value)) or 0

    def transition(self, job_id: str, expected: JobState | tuple[JobState, ...], new: JobState, **values) -> bool:
        """Moves a job from ``expected`` to ``new`` (setting ``values``); False if it was not in ``expected``."""
        expected = expected if isinstance(expected, tuple) else (expected,)
        if new is JobState.RUNNING:
            values.setdefault("started_at", _now())
        if new in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            values.setdefault("finished_at", _now())
        if "output_files" in values:
            values["output_files"] = json.dumps(values["output_files"])
        with self.session() as s, s.begin():
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state.in_([e.value for e in expected]))
                .values(state=new.value, **values)
            )
            return result.rowcount == 1

    def set(self, job_id: str, **values) -> None:
        with self.session() as s, s.begin():
            s.execute(update(JobRow).where(JobRow.id == job_id).values(**values))


def to_schema(row: JobRow) -> BatchJob:
    """The API's view of a row; a running job's counts are those so far."""
    started, finished = _aware(row.started_at), _aware(row.finished_at)
    seconds = None
    if started:
        seconds = round(((finished or _now()) - started).total_seconds(), 2)
    done = row.ok + row.errors
    return BatchJob(
        id=row.id,
        state=JobState(row.state),
        request=BatchJobRequest.model_validate_json(row.request),
        runner=row.runner,
        counts=JobCounts(done=done, ok=row.ok, errors=row.errors),
        output_files=json.loads(row.output_files or "[]"),
        created_at=_aware(row.created_at),
        started_at=started,
        finished_at=finished,
        seconds=seconds,
        attempts=row.attempts,
        error=row.error,
        external_id=row.external_id,
    )
