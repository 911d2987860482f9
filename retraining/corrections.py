"""Where a run's label corrections come from: a corrections CSV, or the label store itself.

``corrections:`` in the retraining config is either a CSV (``image_uri,labels,corrected_at``)
or the label store's SQLAlchemy URL (``sqlite:///./var/labels.db``, ``postgresql://...``).
From the store, each run exports the current human labels into its own folder, so the
run's inputs stay on record, and counts new annotations for the scheduler's trigger.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from models import storage

_STORE_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def is_label_store(location: str | None) -> bool:
    return bool(location) and location.split(":", 1)[0].split("+", 1)[0] in _STORE_SCHEMES


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_since(corrections: str | None, since: datetime | None) -> int:
    """Labels saved after ``since`` (all for None): annotations in the store, rows in a CSV."""
    if is_label_store(corrections):
        from labeling_dashboard.store import LabelStore

        return LabelStore(corrections).annotations_since(since)
    if not corrections or not storage.exists(corrections):
        return 0
    rows = csv.DictReader(io.StringIO(storage.read_text(corrections)))
    times = [parse_time(row.get("corrected_at") or "") for row in rows]
    return sum(1 for t in times if t is not None and (since is None or t > since))


def for_run(corrections: str | None, run_dir: Path) -> tuple[str | None, list[str]]:
    """The corrections CSV this run reads (None if there is none yet), and the labels an
    admin added in the label store, which validation accepts as new."""
    if is_label_store(corrections):
        from labeling_dashboard.store import LabelStore

        store = LabelStore(corrections)
        path = run_dir / "corrections.csv"
        rows = store.export_corrections(str(path))
        return (str(path) if rows else None), store.added_labels()
    if corrections and storage.exists(corrections):
        return corrections, []
    return None, []
