"""The lineage store: every run, every component execution, every artifact it read or wrote.

TFX keeps this in ML Metadata; ``ml-metadata`` does not install beside this stack, so
this is the same idea on SQLAlchemy (SQLite by default, any SQLAlchemy URL works).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Base(DeclarativeBase):
    pass


class Run(_Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed | abandoned
    trigger: Mapped[str] = mapped_column(String(32), default="manual")
    started_at: Mapped[str] = mapped_column(String(32), default=_now)
    finished_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    host: Mapped[str] = mapped_column(String(128), default=lambda: f"{socket.gethostname()}:{os.getpid()}")
    config: Mapped[str] = mapped_column(Text, default="{}")
    summary: Mapped[str] = mapped_column(Text, default="{}")


class Execution(_Base):
    __tablename__ = "executions"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    component: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[str] = mapped_column(Text, default="{}")
    inputs: Mapped[str] = mapped_column(Text, default="[]")  # artifact ids
    outputs: Mapped[str] = mapped_column(Text, default="[]")
    started_at: Mapped[str] = mapped_column(String(32), default=_now)
    finished_at: Mapped[str] = mapped_column(String(32), default=_now)


class Artifact(_Base):
    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    kind: Mapped[str] = mapped_column(
        String(32)
    )  # examples, statistics, ..., model, evaluation, blessing, pushed_model
    uri: Mapped[str] = mapped_column(Text)
    properties: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[str] = mapped_column(String(32), default=_now)

    @property
    def props(self) -> dict[str, Any]:
        return json.loads(self.properties)


class LineageStore:
    def __init__(self, url: str):
        self.engine = create_engine(url)
        _Base.metadata.create_all(self.engine)

    def start_run(self, model_name: str, config: dict[str, Any], trigger: str = "manual") -> int:
        """A new run; runs left 'running' by a killed process are marked abandoned first."""
        with Session(self.engine) as s:
            for stale in s.scalars(select(Run).where(Run.model_name == model_name, Run.status == "running")):
                stale.status, stale.finished_at = "abandoned", _now()
            run = Run(model_name=model_name, status="running", trigger=trigger, config=json.dumps(config, default=str))
            s.add(run)
            s.commit()
            return run.id

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            run.status, run.finished_at, run.summary = status, _now(), json.dumps(summary, default=str)
            s.commit()

    def record(
        self,
        run_id: int,
        component: str,
        parameters: dict[str, Any],
        inputs: list[Artifact],
        outputs: list[tuple[str, str, dict[str, Any]]],
        started_at: str,
    ) -> list[Artifact]:
        """One component execution: its parameters, the artifacts it read, the ones it wrote."""
        with Session(self.engine, expire_on_commit=False) as s:
            made = [
                Artifact(run_id=run_id, kind=kind, uri=uri, properties=json.dumps(props, default=str))
                for kind, uri, props in outputs
            ]
            s.add_all(made)
            s.flush()
            s.add(
                Execution(
                    run_id=run_id,
                    component=component,
                    parameters=json.dumps(parameters, default=str),
                    inputs=json.dumps([a.id for a in inputs]),
                    outputs=json.dumps([a.id for a in made]),
                    started_at=started_at,
                )
            )
            s.commit()
            return made

    def runs(self, model_name: str | None = None) -> list[Run]:
        with Session(self.engine, expire_on_commit=False) as s:
            query = select(Run).order_by(Run.id)
            if model_name:
                query = query.where(Run.model_name == model_name)
            return list(s.scalars(query))

    def executions(self, run_id: int) -> list[Execution]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(Execution).where(Execution.run_id == run_id).order_by(Execution.id)))

    def artifacts(self, run_id: int | None = None, kind: str | None = None) -> list[Artifact]:
        with Session(self.engine, expire_on_commit=False) as s:
            query = select(Artifact).order_by(Artifact.id)
            if run_id is not None:
                query = query.where(Artifact.run_id == run_id)
            if kind:
                query = query.where(Artifact.kind == kind)
            return list(s.scalars(query))

    def latest(self, model_name: str, kind: str, status: str = "succeeded") -> Artifact | None:
        """The newest artifact of a kind from the model's last run with that status (drift baselines)."""
        with Session(self.engine, expire_on_commit=False) as s:
            query = (
                select(Artifact)
                .join(Run, Run.id == Artifact.run_id)
                .where(Run.model_name == model_name, Run.status == status, Artifact.kind == kind)
                .order_by(Artifact.id.desc())
            )
            return s.scalars(query).first()
