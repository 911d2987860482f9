"""Evaluator: the candidate and the production model on the same test split, and the blessing.

Both models are scored through their exported serving signature, with their own label
specs, so the comparison is of what users would get. The candidate is blessed only if
it clears an absolute floor and is not worse than production beyond a tolerance,
overall and per label; with no production model, only the floor applies. For multilabel
models ``accuracy`` is exact match (every label of an image right), as
:func:`models.evaluation.evaluate` defines it, so the blessing compares that and not the
flattering per-label accuracy.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf
from pydantic import BaseModel, Field

from models import evaluation
from models.export import INPUT_NAME, OUTPUT_NAME, SIGNATURE
from models.label_spec import LabelSpec, Task
from models.registry import ModelCard, ResolvedModel, local_saved_model


class EvaluationConfig(BaseModel):
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    floor: float = Field(0.5, ge=0, le=1, description="The candidate's metric must reach this.")
    tolerance: float = Field(0.01, ge=0, description="How much worse than production the metric may be.")
    per_label_tolerance: float = Field(0.05, ge=0, description="How much worse any shared label's F1 may be.")


class Evaluation(BaseModel):
    candidate: dict[str, Any]
    production: dict[str, Any] | None
    production_version: int | None
    blessed: bool
    reasons: list[str]
    files: dict[str, str]


def predict(saved_model_dir: str, images: Sequence[bytes], batch_size: int = 64) -> np.ndarray:
    """Probabilities from a SavedModel's serving signature, in batches."""
    loaded = tf.saved_model.load(saved_model_dir)
    signature = loaded.signatures[SIGNATURE]
    chunks = [
        signature(**{INPUT_NAME: tf.constant(list(images[i : i + batch_size]))})[OUTPUT_NAME].numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def bless(
    candidate: dict[str, Any], production: dict[str, Any] | None, config: EvaluationConfig
) -> tuple[bool, list[str]]:
    """Whether the candidate may replace production, and every reason it may not."""
    reasons = []
    metric = config.metric
    if not candidate.get("count"):
        return False, ["no test examples to evaluate the candidate on"]
    shown = metric_name(metric, candidate)
    if candidate[metric] < config.floor:
        reasons.append(f"candidate {shown} {candidate[metric]:.4f} is under the floor {config.floor:.4f}")
    if production is not None:
        if candidate[metric] < production[metric] - config.tolerance:
            reasons.append(
                f"candidate {shown} {candidate[metric]:.4f} is worse than production's {production[metric]:.4f} "
                f"beyond the tolerance {config.tolerance}"
            )
        for label, mine in candidate["per_label"].items():
            theirs = production["per_label"].get(label)
            if theirs and mine["f1"] < theirs["f1"] - config.per_label_tolerance:
                reasons.append(
                    f"label {label!r}: candidate F1 {mine['f1']:.4f} is worse than production's {theirs['f1']:.4f} "
                    f"beyond the tolerance {config.per_label_tolerance}"
                )
    return not reasons, reasons


def metric_name(metric: str, metrics: dict[str, Any]) -> str:
    """What the compared metric is, in words: multilabel ``accuracy`` is exact match, so say so."""
    return "exact-match accuracy" if metric == "accuracy" and "exact_match" in metrics else metric


def evaluate_candidate(
    card: ModelCard,
    saved_model_dir: str,
    production: ResolvedModel | None,
    images: Sequence[bytes],
    label_sets: Sequence[Sequence[str]],
    config: EvaluationConfig,
    out_dir: str,
) -> Evaluation:
    """Scores both models on the test images, decides the blessing, writes report.html and pictures."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = card.label_spec
    probabilities = {"candidate": predict(saved_model_dir, images)}
    metrics = {"candidate": evaluation.evaluate(spec, probabilities["candidate"], label_sets)}
    if production is not None:
        prod_spec = production.card.label_spec
        prod_probs = predict(local_saved_model(production.saved_model_uri), images)
        metrics["production"] = evaluation.evaluate(prod_spec, prod_probs, _known(label_sets, prod_spec))
        if prod_spec.labels == spec.labels:
            probabilities[f"production v{production.version}"] = prod_probs
    blessed, reasons = bless(metrics["candidate"], metrics.get("production"), config)

    files = {"pr_curves": str(out / "pr_curves.png")}
    evaluation.plot_pr_curves(spec, probabilities, label_sets, files["pr_curves"], f"{card.name}: test split")
    if spec.task is not Task.MULTICLASS:
        files["threshold_curves"] = str(out / "threshold_curves.png")
        evaluation.plot_threshold_curves(
            spec, probabilities["candidate"], label_sets, files["threshold_curves"], "candidate thresholds"
        )
    for name, m in metrics.items():
        if "confusion_matrix" in m:
            files[f"confusion_{name}"] = str(out / f"confusion_{name}.png")
            labels = spec if name == "candidate" else production.card.label_spec
            evaluation.plot_confusion_matrix(labels, m["confusion_matrix"], files[f"confusion_{name}"], name)
    history = card.training.get("history")
    if history:
        files["training_curves"] = str(out / "training_curves.png")
        evaluation.plot_training_curves(history, files["training_curves"], f"{card.name}: training")
    files["report"] = str(out / "report.html")
    result = Evaluation(
        candidate=metrics["candidate"],
        production=metrics.get("production"),
        production_version=production.version if production else None,
        blessed=blessed,
        reasons=reasons,
        files=files,
    )
    (out / "evaluation.json").write_text(result.model_dump_json(indent=2))
    Path(files["report"]).write_text(_html(card, result, config))
    return result


def _known(label_sets: Sequence[Sequence[str]], spec: LabelSpec) -> list[tuple[str, ...]]:
    """Truth restricted to the labels a model knows (production may predate a new label)."""
    return [tuple(label for label in labels if label in spec.labels) for labels in label_sets]


def how_trained(card: ModelCard) -> str:
    """One line on how the candidate was made: recipe, starting weights, synthetic images."""
    t = card.training
    plan = t.get("plan")
    parts = [
        f"{plan['rung']} within a {plan['budget_seconds'] / 60:.0f} min budget" if plan else "recipe as configured",
        f"{card.image_size} px, {t.get('fine_tune_epochs_run', 0)} fine-tuning epochs, TTA {t.get('tta', 'none')}",
        f"backbone {card.backbone}"
        + (f" from {t['backbone_weights']}" if t.get("backbone_weights") else " (ImageNet)"),
    ]
    if t.get("synthesis"):
        parts.append(f"synthetic training images {t['synthesis']['counts']} ({t['synthesis']['steps']} GAN steps)")
    return "; ".join(parts)


def _html(card: ModelCard, result: Evaluation, config: EvaluationConfig) -> str:
    rows = []
    multilabel = card.label_spec.task is Task.MULTILABEL
    for label in card.label_spec.labels:
        cand = result.candidate["per_label"][label]
        prod = (result.production or {}).get("per_label", {}).get(label, {})
        accuracy = f"<td>{cand['accuracy']:.4f}</td>" if multilabel else ""
        rows.append(
            f"<tr><td>{html.escape(label)}</td><td>{cand['f1']:.4f}</td><td>{prod.get('f1', float('nan')):.4f}</td>"
            f"<td>{cand.get('average_precision', float('nan')):.4f}</td>{accuracy}<td>{cand['support']}</td></tr>"
        )
    metric = config.metric
    shown = metric_name(metric, result.candidate)
    production = f"{result.production[metric]:.4f}" if result.production else "none"
    per_label = ""
    if multilabel:
        theirs = (result.production or {}).get("per_label_accuracy")
        per_label = (
            "<p>exact-match accuracy counts an image right only if every one of its labels is; "
            f"per-label accuracy (not compared): candidate {result.candidate['per_label_accuracy']:.4f}, "
            f"production {'none' if theirs is None else format(theirs, '.4f')}</p>"
        )
    accuracy_header = "<th>candidate accuracy</th>" if multilabel else ""
    training = html.escape(how_trained(card))
    verdict = "BLESSED" if result.blessed else "NOT BLESSED: " + "; ".join(map(html.escape, result.reasons))
    images = "".join(
        f'<figure><img src="{Path(p).name}"><figcaption>{k}</figcaption></figure>'
        for k, p in result.files.items()
        if p.endswith(".png")
    )
    return f"""<!doctype html><meta charset="utf-8"><title>{html.escape(card.name)} evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.2em .8em;text-align:right}} img{{max-width:900px}}</style>
<h1>{html.escape(card.name)}: candidate vs production v{result.production_version}</h1>
<p><b>{verdict}</b></p>
<p>trained: {training}</p>
<p>{shown}: candidate {result.candidate[metric]:.4f}, production {production};
floor {config.floor}, tolerance {config.tolerance}, per-label F1 tolerance {config.per_label_tolerance}</p>
{per_label}
<table><tr><th>label</th><th>candidate F1</th><th>production F1</th><th>candidate AP</th>{accuracy_header}<th>support</th></tr>
{"".join(rows)}</table>
<pre>{html.escape(json.dumps({"candidate": result.candidate, "production": result.production}, indent=1)[:20000])}</pre>
{images}
"""
