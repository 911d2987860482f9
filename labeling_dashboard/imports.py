"""Filling the label store: image folders, and prediction outputs of the batch pipeline.

A prediction becomes a pre-annotation that a person confirms or corrects; an error record
adds its image only. A row that cannot be read is reported with its line, and the good
rows are imported (``ImportReport.bad_rows``). Still to come (issue 10): ``gs://``
prefixes, training manifests, and the streaming pipeline's BigQuery table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from labeling_dashboard.store import LabelStore
from models import storage
from models.errors import InvalidInput
from models.manifest import IMAGE_EXTENSIONS


@dataclass
class ImportReport:
    images: int = 0  # new images
    predictions: int = 0
    bad_rows: list[str] = field(default_factory=list)  # "<file> line N: why"


def _records(path: str) -> list[tuple[int, dict | None, str]]:
    """(line, record or None, why not) for each row of a batch output, CSV or JSONL."""
    text = storage.read_text(path)
    if path.lower().endswith((".jsonl", ".json")):
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                out.append((n, record, "") if isinstance(record, dict) else (n, None, "not a JSON object"))
            except ValueError as e:
                out.append((n, None, f"not JSON ({e.msg})"))
        return out
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    missing = {"image_uri", "labels", "model_name", "model_version"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidInput(f"{path} is not a prediction output: no {sorted(missing)} column")
    out = []
    for record in reader:
        record["labels"] = [label for label in (record.get("labels") or "").split(";") if label]
        try:
            record["scores"] = json.loads(record["scores"]) if record.get("scores") else {}
        except ValueError:
            out.append((reader.line_num, None, "its scores cell is not a JSON object"))
            continue
        out.append((reader.line_num, record, ""))
    return out


def import_predictions(store: LabelStore, path: str) -> ImportReport:
    report = ImportReport()
    for line, record, why in _records(path):
        if record is None:
            report.bad_rows.append(f"{path} line {line}: {why}")
            continue
        uri = record.get("image_uri")
        if not isinstance(uri, str) or not uri:
            report.bad_rows.append(f"{path} line {line}: no image_uri")
            continue
        if record.get("error"):
            report.images += store.add_images([uri], source=f"import {Path(path).name}")
            continue
        try:
            report.images += store.add_prediction(
                uri,
                str(record["model_name"]),
                int(record["model_version"]),
                list(record["labels"]),
                dict(record["scores"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            report.bad_rows.append(f"{path} line {line}: {type(e).__name__} {e}")
            continue
        report.predictions += 1
    return report


def import_path(store: LabelStore, path: str) -> ImportReport:
    """A local folder of images, or a batch prediction output (.csv, .jsonl)."""
    if storage.is_local(path) and Path(storage.local_path(path)).is_dir():
        root = Path(storage.local_path(path))
        uris = [str(p.resolve()) for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
        return ImportReport(images=store.add_images(uris, source=f"folder {root.name}"))
    if path.lower().endswith((".csv", ".jsonl", ".json")):
        return import_predictions(store, path)
    raise InvalidInput(f"{path}: import takes a folder of images or a prediction output (.csv, .jsonl)")
