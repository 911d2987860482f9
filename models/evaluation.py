"""Metrics, threshold choice and pictures for a set of predictions.

Decisions go through :meth:`LabelSpec.decide`, exactly as serving makes them, so the
reported accuracy is the accuracy users get.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from models.label_spec import LabelSpec, Task


def choose_thresholds(
    spec: LabelSpec, probabilities: np.ndarray, label_sets: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Per-label thresholds on validation data.

    Binary: of the thresholds whose validation accuracy is within one standard error of
    the best, the one closest to 0.5 (the one-standard-error rule): a calibrated model's
    best threshold for accuracy is 0.5, and a small validation split would otherwise move
    it on noise. Multilabel maximises each label's F1. Labels with no positive or no
    negative example keep 0.5, since nothing can be learned about them.
    """
    if spec.task is Task.MULTICLASS or len(label_sets) == 0:
        return {}
    y = spec.indicator(label_sets)
    candidates = np.linspace(0.05, 0.95, 91)
    columns = _scored_columns(spec)
    thresholds = {}
    for j in columns:
        truth, p = y[:, j], probabilities[:, j]
        if truth.min() == truth.max():
            thresholds[spec.labels[j]] = 0.5
            continue
        if spec.task is Task.BINARY:
            scores = np.array([np.mean((p >= t) == truth) for t in candidates])
            best = scores.max()
            near = np.flatnonzero(scores >= best - np.sqrt(best * (1 - best) / len(truth)) - 1e-12)
            thresholds[spec.labels[j]] = round(float(candidates[near[np.argmin(abs(candidates[near] - 0.5))]]), 3)
            continue
        else:
            scores = [skm.f1_score(truth, p >= t, zero_division=0) for t in candidates]
        # The middle of the best plateau, so the threshold is not perched on an edge.
        best = np.flatnonzero(np.isclose(scores, max(scores)))
        thresholds[spec.labels[j]] = round(float(candidates[best[len(best) // 2]]), 3)
    return thresholds


def evaluate(spec: LabelSpec, probabilities: np.ndarray, label_sets: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Accuracy, macro and per-label precision/recall/F1, ROC-AUC and average precision.

    ``accuracy`` is the share of images whose whole decision is right, whatever the task.
    For multilabel that is exact match (every label of the image right), repeated as
    ``exact_match`` so nobody has to guess; the share of right label decisions is
    ``per_label_accuracy`` (and each label's own ``accuracy`` under ``per_label``). It is
    kept out of the headline because it flatters: with rare labels, a model that
    predicts none of them scores high on it. ``macro_f1`` is the mean of the per-label
    F1 over the label columns.
    """
    if len(label_sets) == 0:
        return {"count": 0}
    truth = spec.indicator(label_sets)
    predicted = spec.indicator([spec.decide(p) for p in probabilities])
    result: dict[str, Any] = {"count": len(label_sets)}
    label_accuracy = np.mean(truth == predicted, axis=0)
    if spec.task is Task.MULTILABEL:
        result["accuracy"] = result["exact_match"] = float(np.mean(np.all(truth == predicted, axis=1)))
        result["per_label_accuracy"] = float(np.mean(label_accuracy))
    else:
        result["accuracy"] = float(np.mean(truth.argmax(1) == predicted.argmax(1)))
    p, r, f1, support = skm.precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    result["macro_f1"] = float(np.mean(f1))
    result["per_label"] = {
        label: {
            **({"accuracy": float(label_accuracy[j])} if spec.task is Task.MULTILABEL else {}),
            "precision": float(p[j]),
            "recall": float(r[j]),
            "f1": float(f1[j]),
            "support": int(support[j]),
            **_ranking_metrics(truth[:, j], probabilities[:, j]),
        }
        for j, label in enumerate(spec.labels)
    }
    if spec.task is not Task.MULTILABEL:
        result["confusion_matrix"] = skm.confusion_matrix(
            truth.argmax(1), predicted.argmax(1), labels=range(len(spec.labels))
        ).tolist()
    return result


def accuracy_text(metrics: Mapping[str, Any]) -> str:
    """The headline accuracy in words, naming exact match for multilabel so 0.68 is not read as per-label 0.96."""
    if "exact_match" in metrics:
        return (
            f"exact-match accuracy {metrics['accuracy']:.4f} (per-label accuracy {metrics['per_label_accuracy']:.4f})"
        )
    return f"accuracy {metrics['accuracy']:.4f}"


def _ranking_metrics(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if truth.min() == truth.max():
        return {}
    return {
        "roc_auc": float(skm.roc_auc_score(truth, scores)),
        "average_precision": float(skm.average_precision_score(truth, scores)),
    }


def _pyplot():
    """matplotlib without a display: pictures go to files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str, title: str) -> None:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scored_columns(spec: LabelSpec) -> list[int]:
    """Labels with their own score to plot: binary's positive label, or every label."""
    return [1] if spec.task is Task.BINARY else list(range(len(spec.labels)))


def plot_confusion_matrix(spec: LabelSpec, matrix: list[list[int]], path: str, title: str) -> None:
    plt = _pyplot()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(spec.labels) + 2.5, 1.2 * len(spec.labels) + 2))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(spec.labels)), spec.labels, rotation=30, ha="right")
    ax.set_yticks(range(len(spec.labels)), spec.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    _save(plt, fig, path, title)


def plot_training_curves(history: dict[str, list[float]], path: str, title: str) -> None:
    plt = _pyplot()

    metrics = sorted({k.removeprefix("val_") for k in history})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=False):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    _save(plt, fig, path, title)


def plot_pr_curves(
    spec: LabelSpec, probabilities: dict[str, np.ndarray], label_sets: Sequence[Sequence[str]], path: str, title: str
) -> None:
    """Precision-recall per label, one line per model (e.g. candidate vs production)."""
    plt = _pyplot()
    truth, columns = spec.indicator(label_sets), _scored_columns(spec)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.8), squeeze=False)
    for ax, j in zip(axes[0], columns, strict=True):
        for name, probs in probabilities.items():
            if truth[:, j].min() == truth[:, j].max():
                continue
            precision, recall, _ = skm.precision_recall_curve(truth[:, j], probs[:, j])
            ap = skm.average_precision_score(truth[:, j], probs[:, j])
            ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
        ax.set_title(spec.labels[j])
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.legend(loc="lower left")
    _save(plt, fig, path, title)


def plot_threshold_curves(
    spec: LabelSpec, probabilities: np.ndarray, label_sets: Sequence[Sequence[str]], path: str, title: str
) -> None:
    """Precision, recall and F1 against the decision threshold, with the chosen threshold marked."""
    plt = _pyplot()
    truth, columns = spec.indicator(label_sets), _scored_columns(spec)
    grid = np.linspace(0.01, 0.99, 99)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.8), squeeze=False)
    for ax, j in zip(axes[0], columns, strict=True):
        y, p = truth[:, j], probabilities[:, j]
        curves = np.array(
            [skm.precision_recall_fscore_support(y, p >= t, average="binary", zero_division=0)[:3] for t in grid]
        )
        for k, name in enumerate(("precision", "recall", "F1")):
            ax.plot(grid, curves[:, k], label=name)
        ax.axvline(spec.threshold(spec.labels[j]), color="grey", linestyle=":", label="threshold")
        ax.set_title(spec.labels[j])
        ax.set_xlabel("threshold")
        ax.legend(loc="lower left")
    _save(plt, fig, path, title)
