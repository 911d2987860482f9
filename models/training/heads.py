"""The classifier head for each task type, its loss and metrics, and class weights."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from models.label_spec import LabelSpec, Task
from models.manifest import Example


def build_head(spec: LabelSpec, feature_dim: int, dropout: float) -> keras.Model:
    units, activation = {
        Task.BINARY: (1, "sigmoid"),
        Task.MULTICLASS: (len(spec.labels), "softmax"),
        Task.MULTILABEL: (len(spec.labels), "sigmoid"),
    }[spec.task]
    inputs = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inputs)
    outputs = keras.layers.Dense(units, activation=activation, name="head_dense")(x)
    return keras.Model(inputs, outputs, name="head")


def exact_match(y_true, y_pred):
    """Per image, 1.0 if every label's decision at 0.5 is right: exact match, for the training curves."""
    right = keras.ops.equal(y_true > 0.5, y_pred >= 0.5)
    return keras.ops.cast(keras.ops.all(right, axis=-1), "float32")


def compile_model(model: keras.Model, spec: LabelSpec, learning_rate) -> None:
    """Multilabel curves show exact match beside per-label accuracy, named so, not Keras's ``binary_accuracy``."""
    if spec.task is Task.MULTICLASS:
        loss, metrics = "sparse_categorical_crossentropy", [keras.metrics.get("sparse_categorical_accuracy")]
    elif spec.task is Task.MULTILABEL:
        loss, metrics = (
            "binary_crossentropy",
            [
                keras.metrics.MeanMetricWrapper(exact_match, name="exact_match"),
                keras.metrics.BinaryAccuracy(name="per_label_accuracy"),
            ],
        )
    else:
        loss, metrics = "binary_crossentropy", [keras.metrics.get("binary_accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)


def compiled_head(spec: LabelSpec, feature_dim: int, dropout: float, learning_rate: float) -> keras.Model:
    head = build_head(spec, feature_dim, dropout)
    compile_model(head, spec, learning_rate)
    return head


def class_weights(spec: LabelSpec, examples: Sequence[Example], mode: str) -> dict[int, float] | None:
    """Inverse-frequency weights for single-label tasks, so a rare class counts as much in the loss."""
    if mode == "none" or spec.task is Task.MULTILABEL:
        return None
    counts = np.bincount(spec.encode([e.labels for e in examples]), minlength=len(spec.labels))
    return {i: float(len(examples) / (len(spec.labels) * n)) for i, n in enumerate(counts) if n}
