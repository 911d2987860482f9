"""Filling the label store: image folders and ``gs://`` prefixes, training manifests, and the
prediction outputs of the batch pipeline (CSV, JSONL) and the streaming pipeline (its
windowed JSONL files, or its BigQuery table as ``bq://project.dataset.table``).

A prediction becomes a pre-annotation that a person confirms or corrects, queued by how
uncertain it was under its model version's label spec (thresholds included) when the
registry has that version. A manifest's labels become annotations by ``manifest:<file>``,
which people can correct. An error record adds its image only. A row that cannot be read
is named with its line; the good rows are imported, or none if ``all_or_nothing``.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from labeling_dashboard.priority import uncertainty
from labeling_dashboard.store import Change, LabelStore, NewPrediction
from models import storage
from models.errors import InvalidInput
from models.label_spec import LabelSpec
from models.manifest import IMAGE_EXTENSIONS, parse_labels, resolve_uri
from models.registry import ModelRegistry
from models.settings import get_settings

PREDICTION_COLUMNS = {"image_uri", "labels", "model_name", "model_version"}


@dataclass
class ImportReport:
    images: int = 0  # new images
    predictions: int = 0
    annotations: int = 0
    bad_rows: list[str] = field(default_factory=list)  # "<file> line N: why"


@dataclass
class _Parsed:
    """What a file would add, held back until every file has been read."""

    images: dict[str, list[str]] = field(default_factory=dict)  # source -> uris
    predictions: list[NewPrediction] = field(default_factory=list)
    labelled: dict[str, list[tuple[str, tuple[str, ...], str]]] = field(default_factory=dict)  # source -> rows
    bad_rows: list[str] = field(default_factory=list)


class _Specs:
    """Label specs of registered versions, looked up once each; None where unknown."""

    def __init__(self, model_root: str):
        self.registry, self.cache = ModelRegistry(model_root), {}

    def __call__(self, name: str, version: int) -> LabelSpec | None:
        if (name, version) not in self.cache:
            try:
                self.cache[name, version] = self.registry.card(name, version).label_spec
            except Exception:  # not registered here, or broken: the scores alone order the queue
                self.cache[name, version] = None
        return self.cache[name, version]


def _absolute(uri: str, base: str) -> str:
    uri = resolve_uri(uri, base)
    return str(Path(storage.local_path(uri)).resolve()) if storage.is_local(uri) else uri


def _time(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _scores(value) -> dict[str, float]:
    if isinstance(value, str):
        value = json.loads(value) if value else {}
    if isinstance(value, list):  # the BigQuery schema's REPEATED RECORD
        value = {s["label"]: s["score"] for s in value}
    if not isinstance(value, dict):
        raise ValueError("scores is not an object of label -> probability")
    return {str(k): float(v) for k, v in value.items()}


def _add_prediction(parsed: _Parsed, specs: _Specs, record: dict, where: str, base: str, source: str) -> None:
    uri = record.get("image_uri")
    if not isinstance(uri, str) or not uri.strip():
        parsed.bad_rows.append(f"{where}: no image_uri")
        return
    uri = _absolute(uri.strip(), base)
    if record.get("error"):
        parsed.images.setdefault(source, []).append(uri)
        return
    try:
        labels = record["labels"]
        labels = parse_labels(labels) if isinstance(labels, str) else tuple(str(label) for label in labels)
        name, version, scores = str(record["model_name"]), int(record["model_version"]), _scores(record.get("scores"))
    except (KeyError, TypeError, ValueError) as e:
        why = f"no {e.args[0]!r}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        parsed.bad_rows.append(f"{where}: {why}")
        return
    parsed.predictions.append(
        NewPrediction(
            uri,
            name,
            version,
            labels,
            scores,
            uncertainty(scores, specs(name, version)),
            _time(record.get("predicted_at")),
        )
    )


def _read_csv(parsed: _Parsed, specs: _Specs, path: str, base: str) -> None:
    reader = csv.DictReader(io.StringIO(storage.read_text(path)))
    columns = set(reader.fieldnames or [])
    name = posixpath.basename(path)
    if PREDICTION_COLUMNS <= columns:
        for record in reader:
            _add_prediction(parsed, specs, record, f"{path} line {reader.line_num}", base, f"import {name}")
        return
    if {"image_uri", "labels"} <= columns:  # a training manifest: people's labels
        rows = parsed.labelled.setdefault(f"manifest:{name}", [])
        for record in reader:
            uri = (record.get("image_uri") or "").strip()
            if not uri:
                parsed.bad_rows.append(f"{path} line {reader.line_num}: no image_uri")
                continue
            rows.append(
                (_absolute(uri, posixpath.dirname(path)), parse_labels(record["labels"]), record.get("split") or "")
            )
        return
    raise InvalidInput(
        f"{path} is neither a prediction output (columns {sorted(PREDICTION_COLUMNS)}) "
        f"nor a manifest (image_uri,labels[,split]); its columns are {sorted(columns)}"
    )


def _read_jsonl(parsed: _Parsed, specs: _Specs, path: str, base: str) -> None:
    name = posixpath.basename(path)
    for n, line in enumerate(storage.read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            parsed.bad_rows.append(f"{path} line {n}: not JSON ({e.msg})")
            continue
        if not isinstance(record, dict):
            parsed.bad_rows.append(f"{path} line {n}: not a JSON object")
            continue
        _add_prediction(parsed, specs, record, f"{path} line {n}", base, f"import {name}")


def _read_bigquery(parsed: _Parsed, specs: _Specs, table: str) -> None:
    from models import bigquery

    spec = table.removeprefix("bq://").replace(":", ".")
    if spec.count(".") != 2:
        raise InvalidInput(f"{table}: a BigQuery table is bq://project.dataset.table")
    rows = bigquery.client(spec.split(".")[0]).list_rows(spec)
    for n, row in enumerate(rows, start=1):
        _add_prediction(parsed, specs, dict(row.items()), f"{table} row {n}", "", f"stream {spec}")


def _read(parsed: _Parsed, specs: _Specs, path: str, relative_to: str | None) -> None:
    if path.startswith("bq://"):
        return _read_bigquery(parsed, specs, path)
    if any(c in path for c in "*?["):
        files = storage.list_files(path)
        if not files:
            raise InvalidInput(f"{path} matches no files")
        for f in files:
            _read(parsed, specs, f, relative_to)
        return
    if storage.is_dir(path):
        root = path.rstrip("/")
        if storage.is_local(root):
            files = [str(p.resolve()) for p in sorted(Path(storage.local_path(root)).rglob("*")) if p.is_file()]
        else:
            files = storage.list_files(f"{root}/**")
        images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        outputs = [f for f in files if f.lower().endswith(".jsonl")]
        if images:
            parsed.images.setdefault(f"folder {posixpath.basename(root)}", []).extend(images)
        for f in outputs:  # a streaming run's windowed files
            _read_jsonl(parsed, specs, f, relative_to or posixpath.dirname(f))
        if not images and not outputs:
            raise InvalidInput(f"{path} has no images ({', '.join(IMAGE_EXTENSIONS)}) and no .jsonl prediction files")
        return
    if not storage.exists(path):
        raise InvalidInput(f"{path} does not exist")
    base = relative_to if relative_to is not None else posixpath.dirname(path)
    if path.lower().endswith((".jsonl", ".json")):
        return _read_jsonl(parsed, specs, path, base)
    if path.lower().endswith(".csv"):
        return _read_csv(parsed, specs, path, base)
    raise InvalidInput(
        f"{path}: import takes an image folder or gs:// prefix, a manifest or prediction CSV, "
        "JSONL prediction files, or bq://project.dataset.table"
    )


def import_paths(
    store: LabelStore,
    paths: list[str],
    *,
    relative_to: str | None = None,
    all_or_nothing: bool = False,
    model_root: str | None = None,
    annotator: str = "",
) -> ImportReport:
    """Reads every path first; then writes the good rows (or, with bad rows and
    ``all_or_nothing``, nothing, raising InvalidInput that names them).

    ``relative_to``: the folder that relative image URIs in prediction outputs are relative
    to (the batch input CSV's folder); default the output file's own folder."""
    parsed, specs = _Parsed(), _Specs(model_root or get_settings().model_root)
    for path in paths:
        _read(parsed, specs, path, relative_to)
    report = ImportReport(bad_rows=parsed.bad_rows)
    if parsed.bad_rows and all_or_nothing:
        shown = "\n  ".join(parsed.bad_rows[:20])
        raise InvalidInput(f"nothing imported: {len(parsed.bad_rows)} bad rows:\n  {shown}")
    for source, uris in parsed.images.items():
        report.images += store.add_images(uris, source=source)
    for source, rows in parsed.labelled.items():
        for split in sorted({s for _, _, s in rows}):
            report.images += store.add_images([u for u, _, s in rows if s == split], source, split or None)
        unlabelled = {i.uri: i.revision for i in store.items([u for u, _, _ in rows]) if i.revision == 0}
        changes = [Change(u, labels, 0) for u, labels, _ in rows if u in unlabelled]
        report.annotations += len(store.annotate_many(changes, annotator or source).saved)
    if parsed.predictions:
        report.images += store.add_predictions(parsed.predictions)
        report.predictions += len(parsed.predictions)
    return report


def import_path(store: LabelStore, path: str, **options) -> ImportReport:
    return import_paths(store, [path], **options)
