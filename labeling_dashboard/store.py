"""The label store: images, model predictions and human annotations, in SQLite or PostgreSQL.

Everything is appended, never updated in place, so every change has its history: an image's
current labels are its newest annotation, which names the revision it replaced. Saving needs
the revision the annotator saw; if someone saved in between, the save is refused with their
labels (``AnnotationConflict``), and a unique (image, revision) pair makes that hold even
for two saves racing in different processes. Plain Python: the dashboard, the CLI and the
retraining pipeline all use it without Streamlit.

Schema changes will go through Alembic migrations (issue 10, not yet built); until then
``create_all`` makes the tables of this version.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from models import storage
from models.errors import ImgclfError, InvalidInput, NotFound


class _Base(DeclarativeBase):
    pass


class ImageRow(_Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    source: Mapped[str] = mapped_column(String(256), default="")
    split: Mapped[str | None] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PredictionRow(_Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(Text)  # JSON list
    scores: Mapped[str] = mapped_column(Text)  # JSON object label -> probability
    predicted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnnotationRow(_Base):
    """One human decision: labels, or 'unusable' with a reason. Revision n replaces n - 1."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("image_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(Text)  # JSON list
    unusable: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    annotator: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Annotation:
    uri: str
    revision: int
    labels: tuple[str, ...]
    annotator: str
    created_at: datetime
    unusable: bool = False
    reason: str = ""


class AnnotationConflict(ImgclfError):
    """Someone saved this image after the revision the annotator saw; ``current`` is their save."""

    status = 409

    def __init__(self, current: Annotation):
        who = f"{current.annotator} at {current.created_at:%Y-%m-%d %H:%M:%S}"
        shown = "unusable" if current.unusable else ";".join(current.labels) or "no labels"
        super().__init__(f"{current.uri} was saved by {who} as {shown} (revision {current.revision}); reload it")
        self.current = current


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _annotation(uri: str, row: AnnotationRow) -> Annotation:
    return Annotation(
        uri,
        row.revision,
        tuple(json.loads(row.labels)),
        row.annotator,
        _aware(row.created_at),
        row.unusable,
        row.reason,
    )


class LabelStore:
    """``url`` is any SQLAlchemy URL; SQLite files get WAL mode, so readers never block the writer."""

    def __init__(self, url: str):
        parsed = make_url(url)
        sqlite = parsed.drivername.startswith("sqlite")
        if sqlite and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {})
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_wal)
        _Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def _image(self, session: Session, uri: str) -> ImageRow:
        image = session.scalar(select(ImageRow).where(ImageRow.uri == uri))
        if image is None:
            raise NotFound(f"{uri} is not in the label store")
        return image

    def add_images(self, uris: Iterable[str], source: str = "", split: str | None = None) -> int:
        """Adds the images not yet known; returns how many were new."""
        added, wanted = 0, list(dict.fromkeys(uris))
        with self._session.begin() as session:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                known = set(session.scalars(select(ImageRow.uri).where(ImageRow.uri.in_(chunk))))
                for uri in chunk:
                    if uri not in known:
                        session.add(ImageRow(uri=uri, source=source, split=split, added_at=_now()))
                        added += 1
        return added

    def add_prediction(
        self, uri: str, model_name: str, model_version: int, labels: list[str], scores: dict[str, float]
    ) -> int:
        """A model's labels for an image (added if unknown): a pre-annotation for people to confirm.

        Returns 1 if the image was new, else 0."""
        new = self.add_images([uri], source=f"{model_name} v{model_version}")
        with self._session.begin() as session:
            session.add(
                PredictionRow(
                    image_id=self._image(session, uri).id,
                    model_name=model_name,
                    model_version=model_version,
                    labels=json.dumps(labels),
                    scores=json.dumps(scores),
                    predicted_at=_now(),
                )
            )
        return new

    def current(self, uri: str) -> Annotation | None:
        """The newest annotation of ``uri``, or None if no one has labelled it."""
        with self._session() as session:
            image = self._image(session, uri)
            row = session.scalar(
                select(AnnotationRow).where(AnnotationRow.image_id == image.id).order_by(AnnotationRow.revision.desc())
            )
            return _annotation(uri, row) if row else None

    def history(self, uri: str) -> list[Annotation]:
        """Every annotation of ``uri``, oldest first: who, when, from what to what."""
        with self._session() as session:
            image = self._image(session, uri)
            rows = session.scalars(
                select(AnnotationRow).where(AnnotationRow.image_id == image.id).order_by(AnnotationRow.revision)
            )
            return [_annotation(uri, row) for row in rows]

    def annotate(
        self,
        uri: str,
        labels: list[str],
        annotator: str,
        seen_revision: int,
        *,
        unusable: bool = False,
        reason: str = "",
    ) -> Annotation:
        """Saves a decision on top of ``seen_revision`` (0: the image had none); AnnotationConflict if stale."""
        with self._session() as session:
            image = self._image(session, uri)
            row = AnnotationRow(
                image_id=image.id,
                revision=seen_revision + 1,
                labels=json.dumps(sorted(set(labels))),
                unusable=unusable,
                reason=reason,
                annotator=annotator,
                created_at=_now(),
            )
            latest = session.scalar(select(func.max(AnnotationRow.revision)).where(AnnotationRow.image_id == image.id))
            if (latest or 0) == seen_revision:
                session.add(row)
                try:
                    session.commit()
                    return _annotation(uri, row)
                except IntegrityError:  # another process saved the same revision first
                    session.rollback()
        current = self.current(uri)
        if current is None:
            raise InvalidInput(f"{uri} has no revision {seen_revision} to build on; it has no annotation yet")
        raise AnnotationConflict(current)

    def corrections_csv(self) -> str:
        """``image_uri,labels,corrected_at`` (docs/retraining.md): each image's newest human labels,
        unusable images left out."""
        with self._session() as session:
            newest = (
                select(AnnotationRow.image_id, func.max(AnnotationRow.revision).label("revision"))
                .group_by(AnnotationRow.image_id)
                .subquery()
            )
            rows = session.execute(
                select(ImageRow.uri, AnnotationRow)
                .join(newest, newest.c.image_id == ImageRow.id)
                .join(
                    AnnotationRow,
                    (AnnotationRow.image_id == newest.c.image_id) & (AnnotationRow.revision == newest.c.revision),
                )
                .order_by(ImageRow.uri)
            ).all()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image_uri", "labels", "corrected_at"])
        for uri, row in rows:
            if not row.unusable:
                writer.writerow([uri, ";".join(json.loads(row.labels)), _aware(row.created_at).isoformat()])
        return out.getvalue()

    def export_corrections(self, output: str) -> int:
        """Writes ``corrections_csv()`` to ``output`` (local or gs://) whole or not at all; returns rows."""
        text = self.corrections_csv()
        storage.replace_atomically(output, text.encode())
        return text.count("\n") - 1


def _sqlite_wal(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
