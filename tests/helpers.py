"""Generated test data: colour-field images a random-weight CNN can tell apart."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from imgclf.emulators import free_port  # noqa: F401  (tests import it from here)

COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}


def colour_image(colour: str, seed: int, size: int = 40, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[colour], np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def write_colour_dataset(root: Path, colours: list[str], per_colour: int, fmt: str = "PNG") -> list[tuple[str, str]]:
    """Writes root/<colour>/<n>.<ext>; returns (relative path, colour) rows."""
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    rows = []
    for c in colours:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_colour):
            rel = f"{c}/{i}.{ext}"
            (root / rel).write_bytes(colour_image(c, seed=1000 * list(COLOURS).index(c) + i, fmt=fmt))
            rows.append((rel, c))
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_split_colour_manifest(
    root: Path, per_colour: int = 12, colours: tuple[str, ...] = ("red", "blue")
) -> tuple[Path, list[tuple[str, str]]]:
    """Colour images under ``root`` and ``root/m.csv`` with explicit splits: of each colour, two thirds train,
    a sixth validation, a sixth test. Returns the manifest and the (relative path, colour) rows."""
    rows = write_colour_dataset(root, list(colours), per_colour)
    sixth = per_colour // 6
    splits = ["train"] * (per_colour - 2 * sixth) + ["validation"] * sixth + ["test"] * sixth
    body = [[rel, colour, splits[i % per_colour]] for i, (rel, colour) in enumerate(rows)]
    write_csv(root / "m.csv", ["image_uri", "labels", "split"], body)
    return root / "m.csv", rows


def tiny_train_config(**overrides):
    from models.training import TrainConfig

    defaults = dict(
        backbone="small_cnn", image_size=32, epochs=25, learning_rate=0.02, patience=25, batch_size=16, recipe="fast"
    )
    return TrainConfig(**{**defaults, **overrides})


def file_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: equal before and after means nothing was touched."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def register_relabelled_version(registry_root: Path, name: str, labels: list[str], alias: str | None = None) -> int:
    """A new version of ``name``: version 1's network under other label names, so which version
    produced a prediction shows in its labels. Moves ``alias`` to it when given."""
    from models.registry import ModelRegistry

    registry = ModelRegistry(str(registry_root))
    card = registry.card(name, 1)
    spec = card.label_spec.model_copy(update={"labels": labels})
    saved_model = registry_root / name / "versions" / "1" / "saved_model"
    openvino = {f"openvino/{p.name}": str(p) for p in sorted(saved_model.parent.glob("openvino/*"))}
    card = card.model_copy(update={"label_spec": spec, "parent_version": 1})
    version = registry.register(card, str(saved_model), openvino)
    if alias:
        registry.set_alias(name, alias, version)
    return version
