"""Task types, the label spec stored with each model version, and the decision rules.

Every consumer (batch, streaming, API, evaluation) turns probabilities into labels
through :meth:`LabelSpec.decide`, so the rules live in exactly one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, Field, model_validator


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"


def infer_task(label_sets: Sequence[Sequence[str]]) -> Task:
    """Multilabel if any example has zero or several labels; else binary for two classes."""
    if any(len(labels) != 1 for labels in label_sets):
        return Task.MULTILABEL
    distinct = {labels[0] for labels in label_sets}
    return Task.BINARY if len(distinct) == 2 else Task.MULTICLASS


class LabelSpec(BaseModel):
    task: Task
    labels: list[str] = Field(description="Ordered; for binary the second label is the positive one.")
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per label for multilabel; the positive label's for binary; unused for multiclass.",
    )

    @model_validator(mode="after")
    def _check(self) -> LabelSpec:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {self.labels}")
        if any(not label or ";" in label for label in self.labels):
            raise ValueError(f"labels must be non-empty and contain no ';': {self.labels}")
        if self.task is Task.BINARY and len(self.labels) != 2:
            raise ValueError(f"a binary task needs exactly two labels, got {self.labels}")
        if self.task is not Task.BINARY and len(self.labels) < 2:
            raise ValueError(f"a {self.task.value} task needs at least two labels, got {self.labels}")
        unknown = set(self.thresholds) - set(self.labels)
        if unknown:
            raise ValueError(f"thresholds name unknown labels: {sorted(unknown)}")
        return self

    @property
    def positive_label(self) -> str:
        return self.labels[1]

    def threshold(self, label: str) -> float:
        return self.thresholds.get(label, 0.5)

    def decide(self, probabilities: Sequence[float], top_k: int = 1) -> list[str]:
        """Labels for one image from its probability vector (one entry per label)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} probabilities, got shape {p.shape}")
        if self.task is Task.BINARY:
            positive = p[1] >= self.threshold(self.positive_label)
            return [self.labels[1] if positive else self.labels[0]]
        if self.task is Task.MULTICLASS:
            order = np.argsort(-p, kind="stable")[: max(1, top_k)]
            return [self.labels[i] for i in order]
        return [label for label, prob in zip(self.labels, p, strict=False) if prob >= self.threshold(label)]

    def encode(self, label_sets: Sequence[Sequence[str]]) -> np.ndarray:
        """Targets for training: a class index per row (single-label) or a 0/1 matrix (multilabel)."""
        index = {label: i for i, label in enumerate(self.labels)}
        if self.task is Task.MULTILABEL:
            y = np.zeros((len(label_sets), len(self.labels)), dtype=np.float32)
            for row, labels in enumerate(label_sets):
                for label in labels:
                    y[row, index[label]] = 1.0
            return y
        return np.array([index[labels[0]] for labels in label_sets], dtype=np.int64)

    def indicator(self, label_sets: Sequence[Sequence[str]]) -> np.ndarray:
        """A 0/1 matrix [rows, labels] for any task, for metrics."""
        index = {label: i for i, label in enumerate(self.labels)}
        y = np.zeros((len(label_sets), len(self.labels)), dtype=np.int64)
        for row, labels in enumerate(label_sets):
            for label in labels:
                y[row, index[label]] = 1
        return y
