"""Real datasets that install from PyPI, written out as image files plus manifests.

ELPV (PyPI ``elpv-dataset``, CC BY-NC-SA 4.0): 2,624 electroluminescence images of
solar cells, each with a defect probability (0, 1/3, 2/3, 1) and a module type.
It is never copied into this repository; it is written under the data folder on demand.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from models.manifest import Example, write_manifest

ELPV_TASKS = ("binary", "multiclass", "multilabel")
_LEVELS = {0.0: "p0", 1 / 3: "p33", 2 / 3: "p67", 1.0: "p100"}


def _elpv_labels(probability: float, module_type: str, task: str) -> tuple[str, ...]:
    defective = probability >= 0.5
    if task == "binary":
        return ("defective",) if defective else ("functional",)
    if task == "multiclass":
        return (min(_LEVELS.items(), key=lambda kv: abs(kv[0] - probability))[1],)
    labels = (["defective"] if defective else []) + (["polycrystalline"] if module_type == "poly" else [])
    return tuple(labels)


def elpv_label_order(task: str) -> list[str]:
    return {
        "binary": ["functional", "defective"],
        "multiclass": list(_LEVELS.values()),
        "multilabel": ["defective", "polycrystalline"],
    }[task]


def stratified_test_split(strata: list[str], test_fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of test rows holding ``test_fraction`` of every stratum."""
    rng = np.random.default_rng(seed)
    strata_arr = np.asarray(strata)
    mask = np.zeros(len(strata), bool)
    for value in sorted(set(strata)):
        idx = np.flatnonzero(strata_arr == value)
        rng.shuffle(idx)
        mask[idx[: round(len(idx) * test_fraction)]] = True
    return mask


def write_elpv(
    out_dir: str,
    task: str = "binary",
    test_fraction: float = 0.25,
    validation_fraction: float = 0.12,
    seed: int = 0,
    limit: int | None = None,
) -> dict[str, str]:
    """Copies the cell images to ``out_dir/images`` and writes two manifests.

    ``manifest.csv`` has every image with a split (stratified test share as in
    Deitsch et al. 2019); ``holdout.csv`` lists the test images alone, for batch runs.
    """
    if task not in ELPV_TASKS:
        raise ValueError(f"task must be one of {ELPV_TASKS}")
    import elpv_dataset

    data_dir = Path(elpv_dataset.__file__).parent / "data"
    rows = np.genfromtxt(data_dir / "labels.csv", dtype=["|S19", "<f8", "|S4"], names=["path", "probability", "type"])
    paths = np.char.decode(rows["path"])
    if limit:
        keep = np.sort(np.random.default_rng(seed).permutation(len(paths))[:limit])
        rows, paths = rows[keep], paths[keep]
    labels = [_elpv_labels(float(p), t.decode(), task) for p, t in zip(rows["probability"], rows["type"], strict=False)]
    strata = [";".join(lbl) or "none" for lbl in labels]
    test = stratified_test_split(strata, test_fraction, seed)
    rest = np.flatnonzero(~test)
    validation = np.zeros(len(paths), bool)
    validation[rest[stratified_test_split([strata[i] for i in rest], validation_fraction, seed + 1)]] = True

    images = Path(out_dir, "images")
    images.mkdir(parents=True, exist_ok=True)
    examples = []
    for i, rel in enumerate(paths):
        target = images / Path(rel).name
        if not target.exists():
            shutil.copyfile(data_dir / rel, target)
        split = "test" if test[i] else "validation" if validation[i] else "train"
        examples.append(Example(os.path.join("images", target.name), labels[i], split))
    manifest = str(Path(out_dir, "manifest.csv"))
    holdout = str(Path(out_dir, "holdout.csv"))
    write_manifest(manifest, examples)
    write_manifest(holdout, [e for e in examples if e.split == "test"], with_split=False)
    return {"manifest": manifest, "holdout": holdout, "images": str(images)}


# ---------------------------------------------------------------- data unlike ELPV, for checking defaults

UNLIKE_ELPV = ("digits", "digit-sets", "shapes")


def _write_images(out_dir: str, images: list[np.ndarray], labels: list[tuple[str, ...]], seed: int) -> dict[str, str]:
    """PNG files plus a manifest with a seeded random 70/10/20 train/validation/test split."""
    from PIL import Image

    folder = Path(out_dir, "images")
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(images))
    split_of = np.empty(len(images), object)
    split_of[order[: int(0.7 * len(images))]] = "train"
    split_of[order[int(0.7 * len(images)) : int(0.8 * len(images))]] = "validation"
    split_of[order[int(0.8 * len(images)) :]] = "test"
    examples = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"{i:05d}.png"
        Image.fromarray(image).save(folder / name)
        examples.append(Example(os.path.join("images", name), label, str(split_of[i])))
    manifest = str(Path(out_dir, "manifest.csv"))
    write_manifest(manifest, examples)
    return {"manifest": manifest, "images": str(folder)}


def write_digits(out_dir: str, seed: int = 0) -> dict[str, str]:
    """scikit-learn's 1,797 handwritten digits as 8x8 grayscale PNGs: multiclass, 10 labels, mirroring changes them."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [(img * (255 / 16)).round().astype(np.uint8) for img in digits.images]
    return _write_images(out_dir, images, [(str(t),) for t in digits.target], seed)


def write_digit_sets(out_dir: str, count: int = 1500, seed: int = 0) -> dict[str, str]:
    """Several objects per image (multilabel): 1-3 distinct scikit-learn digits from 0-5, each 12x12 in a cell
    of a 24x24 canvas with a little jitter; the labels are the digits present."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.flatnonzero(digits.target <= 5)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(count):
        canvas = np.zeros((24, 24), np.uint8)
        chosen = rng.choice(keep, size=rng.integers(1, 4), replace=False)
        while len({digits.target[i] for i in chosen}) < len(chosen):
            chosen = rng.choice(keep, size=len(chosen), replace=False)
        for cell, i in zip(rng.permutation(4)[: len(chosen)], chosen, strict=False):
            glyph = Image.fromarray((digits.images[i] * (255 / 16)).astype(np.uint8)).resize((10, 10), Image.BILINEAR)
            y, x = 12 * (cell // 2) + rng.integers(0, 3), 12 * (cell % 2) + rng.integers(0, 3)
            canvas[y : y + 10, x : x + 10] = np.maximum(canvas[y : y + 10, x : x + 10], np.asarray(glyph))
        images.append(canvas)
        labels.append(tuple(sorted(str(digits.target[i]) for i in chosen)))
    return _write_images(out_dir, images, labels, seed)


def write_shapes(out_dir: str, per_class: int = 200, seed: int = 0) -> dict[str, str]:
    """Generated silhouettes (multiclass): filled circle, square, triangle, star, cross at random size, place and
    turn, 64x64 grayscale with noise. Synthetic: a check of the defaults, not a benchmark of the model."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)

    def polygon(kind: str, r: float) -> list[tuple[float, float]]:
        if kind == "square":
            angles, radii = np.arange(4) * np.pi / 2 + np.pi / 4, [r] * 4
        elif kind == "triangle":
            angles, radii = np.arange(3) * 2 * np.pi / 3, [r] * 3
        elif kind == "star":
            angles, radii = np.arange(10) * np.pi / 5, [r if k % 2 == 0 else r * 0.45 for k in range(10)]
        else:  # cross: a plus sign's 12 corners
            w = r * 0.35
            return [
                (-w, -r),
                (w, -r),
                (w, -w),
                (r, -w),
                (r, w),
                (w, w),
                (w, r),
                (-w, r),
                (-w, w),
                (-r, w),
                (-r, -w),
                (-w, -w),
            ]
        return [(rad * np.cos(a), rad * np.sin(a)) for a, rad in zip(angles, radii, strict=True)]

    images, labels = [], []
    for kind in ("circle", "square", "triangle", "star", "cross"):
        for _ in range(per_class):
            image = Image.new("L", (64, 64), int(rng.integers(0, 60)))
            draw = ImageDraw.Draw(image)
            r = float(rng.uniform(10, 24))
            cx, cy = rng.uniform(r + 2, 62 - r, size=2)
            if kind == "circle":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=int(rng.integers(180, 256)))
            else:
                turn = rng.uniform(0, 2 * np.pi)
                c, s = np.cos(turn), np.sin(turn)
                points = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in polygon(kind, r)]
                draw.polygon(points, fill=int(rng.integers(180, 256)))
            noisy = np.asarray(image, np.float32) + rng.normal(0, 12, (64, 64))
            images.append(noisy.clip(0, 255).astype(np.uint8))
            labels.append((kind,))
    return _write_images(out_dir, images, labels, seed)


def write_unlike_elpv(name: str, out_dir: str, seed: int = 0) -> dict[str, str]:
    writers = {"digits": write_digits, "digit-sets": write_digit_sets, "shapes": write_shapes}
    if name not in writers:
        raise ValueError(f"dataset must be one of {UNLIKE_ELPV}")
    return writers[name](out_dir, seed=seed)
