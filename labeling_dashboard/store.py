"""The label store: images, model predictions and human annotations, in SQLite or PostgreSQL.

History is appended, never updated in place (``schema.py``): an image's current labels are
its newest annotation, which names the one it replaced. Saving needs the revision the
annotator saw; the save is one conditional UPDATE of the image's revision, so if someone
saved in between, it changes nothing and is refused with their labels
(``AnnotationConflict``), across threads, processes and servers alike. Plain Python: the
dashboard, the CLI and the retraining pipeline all use it without Streamlit.

Opening a store brings its schema up to date with the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import and_, create_engine, event, func, insert, or_, select, tuple_, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from labeling_dashboard.schema import AnnotationRow, ImageRow, LabelAddition, PredictionRow
from models import storage
from models.errors import ImgclfError, InvalidInput, NotFound, Unavailable

_CHUNK = 500  # rows per statement: bounded IN lists and parameter counts


@dataclass(frozen=True)
class Annotation:
    uri: str
    revision: int
    labels: tuple[str, ...]
    annotator: str
    created_at: datetime
    unusable: bool = False
    reason: str = ""
    model: str | None = None  # "name vN" the annotator saw, if any
    predicted_labels: tuple[str, ...] | None = None

    @property
    def corrected(self) -> bool:
        """A person changed what the model said."""
        return self.predicted_labels is not None and (self.unusable or self.labels != self.predicted_labels)


@dataclass(frozen=True)
class Item:
    """One image as a reviewer sees it: its current human labels and newest prediction."""

    uri: str
    source: str
    split: str | None
    added_at: datetime
    revision: int
    labels: tuple[str, ...] | None
    unusable: bool
    reason: str
    annotator: str | None
    annotated_at: datetime | None
    model_name: str | None
    model_version: int | None
    predicted_labels: tuple[str, ...] | None
    scores: dict[str, float]
    uncertainty: float
    disagrees: bool

    @property
    def model(self) -> str | None:
        return f"{self.model_name} v{self.model_version}" if self.model_name else None


@dataclass(frozen=True)
class NewPrediction:
    uri: str
    model_name: str
    model_version: int
    labels: Sequence[str]
    scores: dict[str, float]
    uncertainty: float
    predicted_at: datetime | None = None


@dataclass(frozen=True)
class Change:
    """One image's new decision, made on top of the revision the annotator saw."""

    uri: str
    labels: Sequence[str]
    seen_revision: int
    unusable: bool = False
    reason: str = ""


@dataclass
class BulkResult:
    saved: list[Annotation] = field(default_factory=list)
    conflicts: list[Annotation] = field(default_factory=list)  # what the others saved; these were not changed


@dataclass(frozen=True)
class QueueFilter:
    predicted_label: str | None = None
    model_name: str | None = None
    model_version: int | None = None
    source: str | None = None
    added_from: date | None = None
    added_to: date | None = None  # inclusive
    labeled: bool | None = None  # None: both
    disagreement: bool = False  # only images whose human labels differ from the model's
    unlabeled_first: bool = True


@dataclass
class Stats:
    images: int
    labeled: int
    unusable: int
    per_label: dict[str, int]  # current human labels
    per_annotator_day: dict[tuple[str, str], int]  # (annotator, YYYY-MM-DD) -> annotations
    per_model: dict[str, dict[str, int]]  # "name vN" -> {"annotations", "corrected"}
    corrections: dict[str, Counter]  # "name vN" -> Counter("model said -> human said")


class AnnotationConflict(ImgclfError):
    """Someone saved this image after the revision the annotator saw; ``current`` is their save."""

    status = 409

    def __init__(self, current: Annotation):
        who = f"{current.annotator} at {current.created_at:%Y-%m-%d %H:%M:%S}"
        shown = "unusable" if current.unusable else ";".join(current.labels) or "no labels"
        super().__init__(f"{current.uri} was saved by {who} as {shown} (revision {current.revision}); reload it")
        self.current = current


class StoreUnavailable(Unavailable):
    """The database is locked, unreachable or refused the connection."""


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _labels_json(labels: Iterable[str]) -> str:
    return json.dumps(sorted(set(labels)))


def _tuple(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def _item(row: ImageRow) -> Item:
    return Item(
        row.uri,
        row.source,
        row.split,
        _aware(row.added_at),
        row.revision,
        _tuple(row.labels) if row.revision else None,
        row.unusable,
        row.reason,
        row.annotator,
        _aware(row.annotated_at),
        row.model_name,
        row.model_version,
        _tuple(row.predicted_labels),
        json.loads(row.scores) if row.scores else {},
        row.uncertainty,
        row.disagrees,
    )


def _annotation(uri: str, row: AnnotationRow) -> Annotation:
    return Annotation(
        uri,
        row.revision,
        tuple(json.loads(row.labels)),
        row.annotator,
        _aware(row.created_at),
        row.unusable,
        row.reason,
        f"{row.model_name} v{row.model_version}" if row.model_name else None,
        _tuple(row.predicted_labels),
    )


_MIGRATIONS = str(Path(__file__).parent / "migrations")
_migrating = threading.Lock()  # Alembic's ``context`` is a module global: one upgrade at a time per process


def migrate(engine) -> None:
    """Brings the schema to the newest Alembic revision (creates it on an empty database)."""
    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
    with _migrating, engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # two servers starting on an empty database
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7130301)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class LabelStore:
    """``url`` is any SQLAlchemy URL; SQLite files get WAL mode, so readers never block the writer.

    ``busy_timeout_s``: how long a SQLite writer waits for another's lock before giving up."""

    def __init__(self, url: str, busy_timeout_s: float = 30.0):
        parsed = make_url(url)
        self.url = url
        self.sqlite = parsed.drivername.startswith("sqlite")
        if self.sqlite and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.drivername in ("postgresql", "postgres"):
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        connect_args = {"timeout": busy_timeout_s} if self.sqlite else {"connect_timeout": 10}
        self.engine = create_engine(url, connect_args=connect_args, pool_pre_ping=not self.sqlite)
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        try:
            migrate(self.engine)
        except OperationalError as e:
            raise StoreUnavailable(f"the label store {parsed.render_as_string()} cannot be opened: {_why(e)}") from e
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False)

    def _run(self, work, write: bool = False):
        """Runs ``work(session)`` in one transaction; a locked or unreachable database is StoreUnavailable."""
        try:
            with (self._write if write else self._read).begin() as session:
                return work(session)
        except OperationalError as e:
            raise StoreUnavailable(f"the label store is unavailable: {_why(e)}") from e

    # ---- filling the store ----

    def add_images(self, uris: Iterable[str], source: str = "", split: str | None = None) -> int:
        """Adds the images not yet known; returns how many were new."""
        wanted = list(dict.fromkeys(uris))

        def work(session) -> int:
            added = 0
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                known = set(session.scalars(select(ImageRow.uri).where(ImageRow.uri.in_(chunk))))
                new = [
                    {"uri": u, "source": source, "split": split, "added_at": _now()} for u in chunk if u not in known
                ]
                if new:
                    session.execute(insert(ImageRow), new)
                added += len(new)
            return added

        return self._run(work, write=True)

    def add_predictions(self, predictions: Iterable[NewPrediction], source: str = "") -> int:
        """Records model predictions (adding unknown images with ``source``); the newest one per
        image becomes what reviewers see. Returns how many images were new."""
        rows = list(predictions)

        def work(session) -> int:
            added = 0
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                first = {p.uri: p for p in reversed(chunk)}  # each image's first prediction in the chunk
                uris = list(first)
                images = {i.uri: i for i in session.scalars(select(ImageRow).where(ImageRow.uri.in_(uris)))}
                new = [
                    {"uri": u, "source": source or f"{p.model_name} v{p.model_version}", "added_at": _now()}
                    for u, p in first.items()
                    if u not in images
                ]
                if new:
                    session.execute(insert(ImageRow), new)
                    added += len(new)
                    images |= {i.uri: i for i in session.scalars(select(ImageRow).where(ImageRow.uri.in_(uris)))}
                history, current = [], {}
                for p in chunk:
                    at = p.predicted_at or _now()
                    image = images[p.uri]
                    history.append(
                        {
                            "image_id": image.id,
                            "model_name": p.model_name,
                            "model_version": p.model_version,
                            "labels": json.dumps(list(p.labels)),
                            "scores": json.dumps(p.scores),
                            "uncertainty": p.uncertainty,
                            "predicted_at": at,
                        }
                    )
                    newest = current.get(image.id, {}).get("predicted_at") or _aware(image.predicted_at)
                    if newest is None or at >= newest:
                        predicted = _labels_json(p.labels)
                        current[image.id] = {
                            "id": image.id,
                            "model_name": p.model_name,
                            "model_version": p.model_version,
                            "predicted_labels": predicted,
                            "scores": json.dumps(p.scores),
                            "predicted_at": at,
                            "uncertainty": p.uncertainty,
                            "disagrees": bool(image.revision) and not image.unusable and image.labels != predicted,
                        }
                session.execute(insert(PredictionRow), history)
                if current:
                    session.execute(update(ImageRow), list(current.values()))
            return added

        return self._run(work, write=True)

    def add_prediction(
        self, uri: str, model_name: str, model_version: int, labels: Sequence[str], scores: dict[str, float]
    ) -> int:
        """One prediction, queued by its scores alone (``imports`` uses the version's label spec)."""
        from labeling_dashboard.priority import uncertainty

        return self.add_predictions(
            [NewPrediction(uri, model_name, model_version, labels, scores, uncertainty(scores))]
        )

    # ---- reading ----

    def item(self, uri: str) -> Item:
        row = self._run(lambda s: s.scalar(select(ImageRow).where(ImageRow.uri == uri)))
        if row is None:
            raise NotFound(f"{uri} is not in the label store")
        return _item(row)

    def items(self, uris: Sequence[str]) -> list[Item]:
        """The known images among ``uris``."""

        def work(session):
            out = []
            for start in range(0, len(uris), _CHUNK):
                chunk = list(uris[start : start + _CHUNK])
                out += [_item(r) for r in session.scalars(select(ImageRow).where(ImageRow.uri.in_(chunk)))]
            return out

        return self._run(work)

    def current(self, uri: str) -> Annotation | None:
        """The newest annotation of ``uri``, or None if no one has labelled it."""
        history = self.history(uri)
        return history[-1] if history else None

    def history(self, uri: str) -> list[Annotation]:
        """Every annotation of ``uri``, oldest first: who, when, from what to what."""

        def work(session):
            image = session.scalar(select(ImageRow.id).where(ImageRow.uri == uri))
            if image is None:
                raise NotFound(f"{uri} is not in the label store")
            rows = session.scalars(
                select(AnnotationRow).where(AnnotationRow.image_id == image).order_by(AnnotationRow.revision)
            )
            return [_annotation(uri, row) for row in rows]

        return self._run(work)

    def _where(self, f: QueueFilter):
        conditions = []
        if f.predicted_label:
            conditions.append(ImageRow.predicted_labels.contains(json.dumps(f.predicted_label)))
        if f.model_name:
            conditions.append(ImageRow.model_name == f.model_name)
        if f.model_version is not None:
            conditions.append(ImageRow.model_version == f.model_version)
        if f.source:
            conditions.append(ImageRow.source == f.source)
        if f.added_from:
            conditions.append(ImageRow.added_at >= datetime.combine(f.added_from, time(), UTC))
        if f.added_to:
            conditions.append(ImageRow.added_at < datetime.combine(f.added_to + timedelta(days=1), time(), UTC))
        if f.labeled is not None:
            conditions.append(ImageRow.labeled.is_(f.labeled))
        if f.disagreement:
            conditions.append(ImageRow.disagrees.is_(True))
        return and_(*conditions) if conditions else None

    def queue(self, f: QueueFilter = QueueFilter(), limit: int = 24, offset: int = 0) -> list[Item]:
        """Images in review order: the most uncertain first (unlabelled ones before labelled ones
        unless ``f.unlabeled_first`` is off)."""
        order = [ImageRow.uncertainty.desc(), ImageRow.id]
        if f.unlabeled_first:
            order.insert(0, ImageRow.labeled)
        query = select(ImageRow).order_by(*order).limit(limit).offset(offset)
        where = self._where(f)
        if where is not None:
            query = query.where(where)
        return [_item(row) for row in self._run(lambda s: list(s.scalars(query)))]

    def count(self, f: QueueFilter = QueueFilter()) -> int:
        query = select(func.count(ImageRow.id))
        where = self._where(f)
        if where is not None:
            query = query.where(where)
        return self._run(lambda s: s.scalar(query))

    def facets(self) -> dict[str, list]:
        """The values the queue's filters can take: sources, models, predicted labels."""

        def work(session):
            sources = list(session.scalars(select(ImageRow.source).distinct().order_by(ImageRow.source)))
            models = session.execute(
                select(ImageRow.model_name, ImageRow.model_version)
                .where(ImageRow.model_name.is_not(None))
                .distinct()
                .order_by(ImageRow.model_name, ImageRow.model_version)
            ).all()
            combos = session.scalars(
                select(ImageRow.predicted_labels).where(ImageRow.predicted_labels.is_not(None)).distinct()
            )
            labels = sorted({label for combo in combos for label in json.loads(combo)})
            return {"sources": sources, "models": [tuple(m) for m in models], "predicted_labels": labels}

        return self._run(work)

    # ---- saving decisions ----

    def _save_all(self, session, changes: Sequence[Change], annotator: str, at: datetime) -> tuple[list, list]:
        """A conditional UPDATE moves each image's revision only if it is still the one seen (the
        atomic part); changes alike (a grid action) share one statement. The history rows follow
        in one INSERT. Returns (saved, stale)."""
        groups: dict[tuple, list[Change]] = defaultdict(list)
        for change in changes:
            labels_json = _labels_json([] if change.unusable else change.labels)
            groups[(labels_json, change.unusable, change.reason, change.seen_revision)].append(change)
        moved, stale = [], []
        for (labels_json, unusable, reason, seen), alike in groups.items():
            for start in range(0, len(alike), _CHUNK):
                chunk = {c.uri: c for c in alike[start : start + _CHUNK]}
                rows = session.execute(
                    update(ImageRow)
                    .where(ImageRow.uri.in_(list(chunk)), ImageRow.revision == seen)
                    .values(
                        revision=seen + 1,
                        labeled=True,
                        labels=labels_json,
                        unusable=unusable,
                        reason=reason,
                        annotator=annotator,
                        annotated_at=at,
                        disagrees=and_(
                            ImageRow.predicted_labels.is_not(None),
                            or_(ImageRow.predicted_labels != labels_json, unusable),
                        ),
                    )
                    .returning(
                        ImageRow.uri,
                        ImageRow.id,
                        ImageRow.model_name,
                        ImageRow.model_version,
                        ImageRow.predicted_labels,
                    )
                    .execution_options(synchronize_session=False)
                ).all()
                for uri, *row in rows:
                    moved.append((chunk.pop(uri), labels_json, *row))
                stale += chunk.values()  # not updated: someone saved since, or unknown
        if not moved:
            return [], stale
        pairs = [(image_id, change.seen_revision) for change, _, image_id, *_ in moved if change.seen_revision]
        replaced = {}
        for start in range(0, len(pairs), _CHUNK):
            replaced |= {
                (image_id, revision): id_
                for id_, image_id, revision in session.execute(
                    select(AnnotationRow.id, AnnotationRow.image_id, AnnotationRow.revision).where(
                        tuple_(AnnotationRow.image_id, AnnotationRow.revision).in_(pairs[start : start + _CHUNK])
                    )
                )
            }
        rows = [
            {
                "image_id": image_id,
                "revision": change.seen_revision + 1,
                "replaces": replaced.get((image_id, change.seen_revision)),
                "labels": labels_json,
                "unusable": change.unusable,
                "reason": change.reason,
                "annotator": annotator,
                "created_at": at,
                "model_name": model_name,
                "model_version": model_version,
                "predicted_labels": predicted,
            }
            for change, labels_json, image_id, model_name, model_version, predicted in moved
        ]
        session.execute(insert(AnnotationRow), rows)
        saved = [
            Annotation(
                change.uri,
                row["revision"],
                tuple(json.loads(row["labels"])),
                annotator,
                at,
                change.unusable,
                change.reason,
                f"{row['model_name']} v{row['model_version']}" if row["model_name"] else None,
                _tuple(row["predicted_labels"]),
            )
            for (change, *_), row in zip(moved, rows, strict=True)
        ]
        return saved, stale

    def _refusal(self, change: Change) -> Annotation:
        current = self.current(change.uri)
        if current is None:
            raise InvalidInput(
                f"{change.uri} has no revision {change.seen_revision} to build on; it has no annotation yet"
            )
        return current

    def annotate(
        self,
        uri: str,
        labels: Sequence[str],
        annotator: str,
        seen_revision: int,
        *,
        unusable: bool = False,
        reason: str = "",
    ) -> Annotation:
        """Saves a decision on top of ``seen_revision`` (0: the image had none); AnnotationConflict if stale."""
        change = Change(uri, labels, seen_revision, unusable, reason)
        try:
            saved, _ = self._run(lambda s: self._save_all(s, [change], annotator, _now()), write=True)
        except IntegrityError:  # a racing save took this revision between our UPDATE and INSERT
            saved = []
        if saved:
            return saved[0]
        self.item(uri)  # NotFound for an unknown image
        raise AnnotationConflict(self._refusal(change))

    def annotate_many(self, changes: Sequence[Change], annotator: str) -> BulkResult:
        """A grid action in one transaction: every image whose revision is still the one seen
        is saved; the others are left alone and returned as conflicts with what is there now."""
        result = BulkResult()
        result.saved, stale = self._run(lambda s: self._save_all(s, changes, annotator, _now()), write=True)
        for change in stale:
            self.item(change.uri)
            result.conflicts.append(self._refusal(change))
        return result

    # ---- label additions ----

    def add_label(self, label: str, admin: str) -> None:
        label = label.strip()
        if not label or ";" in label or "," in label:
            raise InvalidInput(f"{label!r} cannot be a label: it must be non-empty and contain no ';' or ','")
        if label in self.added_labels():
            return
        self._run(lambda s: s.add(LabelAddition(label=label, added_by=admin, added_at=_now())), write=True)

    def added_labels(self) -> list[str]:
        return self._run(lambda s: list(s.scalars(select(LabelAddition.label).order_by(LabelAddition.id))))

    # ---- what retraining reads ----

    def annotations_since(self, since: datetime | None) -> int:
        """Human decisions saved after ``since`` (all of them for None): the scheduler's trigger."""
        query = select(func.count(AnnotationRow.id))
        if since is not None:
            query = query.where(AnnotationRow.created_at > since)
        return self._run(lambda s: s.scalar(query))

    def corrections_csv(self) -> str:
        """``image_uri,labels,corrected_at`` (docs/retraining.md): each image's newest human labels,
        unusable images left out."""
        rows = self._run(
            lambda s: s.execute(
                select(ImageRow.uri, ImageRow.labels, ImageRow.annotated_at)
                .where(ImageRow.labeled.is_(True), ImageRow.unusable.is_(False))
                .order_by(ImageRow.uri)
            ).all()
        )
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image_uri", "labels", "corrected_at"])
        for uri, labels, at in rows:
            writer.writerow([uri, ";".join(json.loads(labels)), _aware(at).isoformat()])
        return out.getvalue()

    def export_corrections(self, output: str) -> int:
        """Writes ``corrections_csv()`` to ``output`` (local or gs://) whole or not at all; returns rows."""
        text = self.corrections_csv()
        storage.replace_atomically(output, text.encode())
        return text.count("\n") - 1

    # ---- stats ----

    def stats(self, days: int = 30) -> Stats:
        since = _now() - timedelta(days=days)

        def work(session):
            images, labeled, unusable = session.execute(
                select(
                    func.count(ImageRow.id),
                    func.count(ImageRow.id).filter(ImageRow.labeled.is_(True)),
                    func.count(ImageRow.id).filter(ImageRow.unusable.is_(True)),
                )
            ).one()
            per_label: Counter = Counter()
            for labels, n in session.execute(
                select(ImageRow.labels, func.count())
                .where(ImageRow.labeled.is_(True), ImageRow.unusable.is_(False))
                .group_by(ImageRow.labels)
            ):
                for label in json.loads(labels):
                    per_label[label] += n
            per_day: Counter = Counter()
            per_model: dict[str, dict[str, int]] = defaultdict(lambda: {"annotations": 0, "corrected": 0})
            corrections: dict[str, Counter] = defaultdict(Counter)
            for row in session.scalars(select(AnnotationRow).where(AnnotationRow.created_at >= since)):
                a = _annotation("", row)
                per_day[(a.annotator, f"{a.created_at:%Y-%m-%d}")] += 1
                if a.model:
                    per_model[a.model]["annotations"] += 1
                    if a.corrected:
                        per_model[a.model]["corrected"] += 1
                        said = ";".join(a.predicted_labels or ()) or "(none)"
                        now = "unusable" if a.unusable else ";".join(a.labels) or "(none)"
                        corrections[a.model][f"{said} -> {now}"] += 1
            return Stats(images, labeled, unusable, dict(per_label), dict(per_day), dict(per_model), dict(corrections))

        return self._run(work)


def _why(e: OperationalError) -> str:
    return str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)


def _sqlite_connect(connection, _record) -> None:
    connection.isolation_level = None  # transactions are begun by _sqlite_begin
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # A writing transaction takes the write lock up front (waiting up to the timeout), so one
    # that reads and then writes never fails on a snapshot another writer made stale.
    immediate = connection.get_execution_options().get("sqlite_immediate")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
