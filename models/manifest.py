"""Dataset manifests: ``image_uri,labels[,split]`` CSVs, and image-folder trees converted to them.

Reads and writes go through :mod:`models.storage` so a manifest may sit on ``gs://``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from models import storage
from models.errors import InvalidInput

SPLITS = ("train", "validation", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
LABEL_SEPARATOR = ";"


class ManifestError(InvalidInput):
    """A manifest that cannot be used; the message says which rows and what to do."""


@dataclass(frozen=True)
class Example:
    image_uri: str
    labels: tuple[str, ...]
    split: str
    row: int = field(default=0, compare=False)  # 1-based data row in the file, for messages


def hash_split(image_uri: str, validation: float = 0.1, test: float = 0.1) -> str:
    """A stable split from the URI alone, so an image never changes split between runs."""
    bucket = int.from_bytes(hashlib.sha256(image_uri.encode()).digest()[:8], "big") / 2**64
    if bucket < test:
        return "test"
    if bucket < test + validation:
        return "validation"
    return "train"


def resolve_uri(uri: str, base_dir: str) -> str:
    """Relative URIs in a manifest are relative to the manifest's folder."""
    if "://" in uri or uri.startswith("/"):
        return uri
    return storage.join(base_dir, uri) if base_dir else uri


def parse_labels(cell: str | None) -> tuple[str, ...]:
    return tuple(label.strip() for label in (cell or "").split(LABEL_SEPARATOR) if label.strip())


def read_manifest(uri: str) -> list[Example]:
    reader = csv.DictReader(io.StringIO(storage.read_text(uri)))
    columns = reader.fieldnames or []
    missing = [c for c in ("image_uri", "labels") if c not in columns]
    if missing:
        raise ManifestError(
            f"{uri}: the header must have columns image_uri,labels[,split]; missing {missing}, found {columns}"
        )
    base_dir = posixpath.dirname(uri)
    examples, bad_splits = [], []
    for row_number, row in enumerate(reader, start=1):
        image_uri = (row.get("image_uri") or "").strip()
        if not image_uri:
            bad_splits.append(f"row {row_number}: empty image_uri")
            continue
        split = (row.get("split") or "").strip() or hash_split(image_uri)
        if split not in SPLITS:
            bad_splits.append(f"row {row_number}: split {split!r} is not one of {SPLITS}")
            continue
        examples.append(Example(resolve_uri(image_uri, base_dir), parse_labels(row.get("labels")), split, row_number))
    if bad_splits:
        raise ManifestError(f"{uri}: {len(bad_splits)} bad rows:\n  " + "\n  ".join(bad_splits[:20]))
    if not examples:
        raise ManifestError(f"{uri}: the manifest has no rows")
    return examples


def examples_from_folder(root: str) -> list[Example]:
    """An image-folder tree ``root/<label>/<file>``: one single-label example per image."""
    root = root.rstrip("/")
    examples = []
    for path in storage.list_files(storage.join(root, "*", "*")):
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            continue
        label = posixpath.basename(posixpath.dirname(path))
        examples.append(Example(path, (label,), hash_split(path)))
    examples.sort(key=lambda e: e.image_uri)
    if not examples:
        raise ManifestError(f"{root}: no images found as {root}/<label>/<image>{IMAGE_EXTENSIONS}")
    return [Example(e.image_uri, e.labels, e.split, i) for i, e in enumerate(examples, start=1)]


def write_manifest(uri: str, examples: Iterable[Example], with_split: bool = True) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image_uri", "labels", "split"] if with_split else ["image_uri", "labels"])
    for e in examples:
        cells = [e.image_uri, LABEL_SEPARATOR.join(e.labels)]
        writer.writerow(cells + [e.split] if with_split else cells)
    storage.write_text(uri, out.getvalue())


def check_labels(examples: Sequence[Example], known: Sequence[str]) -> None:
    """Names every label outside ``known`` and the rows that use it."""
    rows_by_label: dict[str, list[int]] = {}
    for e in examples:
        for label in e.labels:
            if label not in known:
                rows_by_label.setdefault(label, []).append(e.row)
    if rows_by_label:
        lines = [
            f"unknown label {label!r} in {len(rows)} rows (rows {', '.join(map(str, rows[:10]))}"
            f"{', ...' if len(rows) > 10 else ''})"
            for label, rows in sorted(rows_by_label.items())
        ]
        raise ManifestError(
            "\n".join(lines) + f"\nThe label spec has {list(known)}. Fix these rows, or pass --allow-new-labels "
            "(or a --labels list that includes them) to train with a new label set."
        )
