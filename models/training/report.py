"""What a training run leaves for people: metrics in the log, and metrics.json with pictures beside the version."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from models import evaluation
from models.label_spec import LabelSpec

log = logging.getLogger("imgclf.train")


def log_metrics(spec: LabelSpec, metrics: dict[str, dict[str, Any]]) -> None:
    for split, m in metrics.items():
        if m.get("count"):
            log.info("%s: %d images, %s, macro-F1 %.4f", split, m["count"], evaluation.accuracy_text(m), m["macro_f1"])
    if spec.thresholds:
        log.info("thresholds chosen on validation: %s", spec.thresholds)


def write_report(
    folder: Path, spec: LabelSpec, metrics, history, name: str, pictures: dict[str, bytes] | None = None
) -> dict[str, str]:
    """metrics.json plus pictures (and ``pictures`` made elsewhere), stored beside the version as report/*."""
    folder.mkdir(parents=True)
    files = {"report/metrics.json": folder / "metrics.json"}
    files["report/metrics.json"].write_text(json.dumps(metrics, indent=2))
    for file_name, png in (pictures or {}).items():
        files[f"report/{file_name}"] = folder / file_name
        files[f"report/{file_name}"].write_bytes(png)
    if history:
        files["report/training_curves.png"] = folder / "training_curves.png"
        evaluation.plot_training_curves(history, str(files["report/training_curves.png"]), f"{name}: training")
    split = "test" if metrics["test"].get("count") else "validation"
    if "confusion_matrix" in metrics[split]:
        files["report/confusion_matrix.png"] = folder / "confusion_matrix.png"
        evaluation.plot_confusion_matrix(
            spec,
            metrics[split]["confusion_matrix"],
            str(files["report/confusion_matrix.png"]),
            f"{name}: {split} split",
        )
    return {k: str(v) for k, v in files.items()}
