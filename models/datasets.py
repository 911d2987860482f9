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
