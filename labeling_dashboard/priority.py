"""How much a human label would help: the review queue's order.

Active learning's plain uncertainty sampling, in [0, 1], 1 first:
- binary: closeness of the positive score to its threshold;
- multiclass: one minus the margin between the top two scores;
- multilabel: closeness of the score nearest its label's threshold.
An image no model has seen counts as 1. Distances to a threshold are scaled by the room
on that side of it, so a threshold of 0.2 does not make every low score look certain.
"""

from __future__ import annotations

from collections.abc import Mapping

from models.label_spec import LabelSpec, Task


def _closeness(p: float, threshold: float) -> float:
    room = threshold if p < threshold else 1.0 - threshold
    return 1.0 - min(1.0, abs(p - threshold) / room) if room > 0 else 0.0


def uncertainty(scores: Mapping[str, float], spec: LabelSpec | None = None) -> float:
    """``spec`` gives the task and thresholds; without one it is guessed from the scores
    (summing to 1: single-label; otherwise multilabel at 0.5)."""
    if not scores:
        return 1.0
    values = [float(v) for v in scores.values()]
    if spec is None:
        task = Task.MULTICLASS if abs(sum(values) - 1.0) < 1e-3 else Task.MULTILABEL
        thresholds: Mapping[str, float] = {}
    else:
        task, thresholds = spec.task, spec.thresholds
    if task is Task.BINARY and spec is not None and spec.positive_label in scores:
        return round(_closeness(float(scores[spec.positive_label]), spec.threshold(spec.positive_label)), 6)
    if task in (Task.BINARY, Task.MULTICLASS):
        top = sorted(values, reverse=True) + [0.0]
        return round(1.0 - (top[0] - top[1]), 6)
    return round(max(_closeness(float(p), thresholds.get(label, 0.5)) for label, p in scores.items()), 6)
