"""The label store's tables. Alembic migrations (``migrations/``) create and change them.

History lives in append-only tables: ``predictions`` and ``annotations`` only ever get
rows. ``images`` also carries each image's current state (newest annotation, newest
prediction, review priority), written in the same transaction as the history row, so
the review queue is one indexed query on one table even with 100,000 images; its
``revision`` column is the optimistic-concurrency token.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (
        # the review orders (unlabelled first or mixed, most uncertain first), so a page is an index walk
        Index("ix_images_queue", "labeled", text("uncertainty DESC"), "id"),
        Index("ix_images_priority", text("uncertainty DESC"), "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    source: Mapped[str] = mapped_column(String(256), default="")
    split: Mapped[str | None] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # current human state: the newest annotation (revision 0: none yet)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    labeled: Mapped[bool] = mapped_column(Boolean, default=False)  # revision > 0
    labels: Mapped[str | None] = mapped_column(Text)  # JSON list
    unusable: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    annotator: Mapped[str | None] = mapped_column(String(128))
    annotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # current model state: the newest prediction
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer)
    predicted_labels: Mapped[str | None] = mapped_column(Text)  # JSON list
    scores: Mapped[str | None] = mapped_column(Text)  # JSON object label -> probability
    predicted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    uncertainty: Mapped[float] = mapped_column(Float, default=1.0)  # 1: a label helps most
    disagrees: Mapped[bool] = mapped_column(Boolean, default=False)  # human labels != model labels


class PredictionRow(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(Text)
    scores: Mapped[str] = mapped_column(Text)
    uncertainty: Mapped[float] = mapped_column(Float)
    predicted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnnotationRow(Base):
    """One human decision: labels, or 'unusable' with a reason. Revision n replaces n - 1.

    The model's labels at the time ride along, so corrections per model version are countable."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("image_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    replaces: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"))
    labels: Mapped[str] = mapped_column(Text)
    unusable: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    annotator: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer)
    predicted_labels: Mapped[str | None] = mapped_column(Text)


class LabelAddition(Base):
    """A label an admin added beyond the model's label spec; retraining's validation accepts it."""

    __tablename__ = "label_additions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(256), unique=True)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
