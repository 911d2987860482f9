"""Whether mirroring an image keeps its label: decides flip augmentation and flip TTA from the data.

Digits and letters change meaning when mirrored; solar cells, textures and most top-down
photos do not. Instead of assuming either, the head trained on frozen features is scored on
the validation images as they are and mirrored each way: a flip that costs no more than the
noise of that split (two standard errors, at least two points) is taken as label-preserving.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from models import openvino_runtime
from models.label_spec import LabelSpec, Task
from models.training.data import TrainingData, run_on_images

log = logging.getLogger("imgclf.train")


@dataclass(frozen=True)
class FlipCheck:
    horizontal: bool
    vertical: bool
    scores: dict[str, float]
    tolerance: float

    @property
    def flip(self) -> str:
        return {
            (True, True): "horizontal_and_vertical",
            (True, False): "horizontal",
            (False, True): "vertical",
            (False, False): "none",
        }[(self.horizontal, self.vertical)]

    @property
    def tta(self) -> str:
        """The exported flip TTA averages all four flips, so it needs both."""
        return "flips" if self.horizontal and self.vertical else "none"

    def as_dict(self) -> dict:
        return asdict(self)


def right_share(spec: LabelSpec, raw: np.ndarray, y: np.ndarray) -> float:
    """Share of images whose decisions at 0.5 (argmax for multiclass) are all right."""
    if spec.task is Task.MULTICLASS:
        right = raw.argmax(axis=1) == y
    else:
        right = ((raw >= 0.5) == (y > 0.5)).all(axis=1)
    return float(right.mean()) if len(right) else 0.0


def check_flips(classifier: keras.Model, data: TrainingData, image_size: int) -> FlipCheck | None:
    """None without a validation split: then nothing is flipped."""
    images = data.images("validation")
    if not images:
        return None
    y = data.targets("validation")
    classifier = openvino_runtime.frozen(classifier, 3 * len(images))
    scores = {}
    for name, transform in (
        ("as is", None),
        ("horizontal", lambda x: tf.reverse(x, axis=[2])),
        ("vertical", lambda x: tf.reverse(x, axis=[1])),
    ):
        raw, decoded = run_on_images(classifier, images, image_size, f"flip check ({name})", transform)
        scores[name] = round(right_share(data.spec, raw, y[decoded]), 4)
    p, n = scores["as is"], len(images)
    tolerance = max(0.02, 2 * math.sqrt(max(p * (1 - p), 1e-4) / n))
    check = FlipCheck(
        horizontal=scores["horizontal"] >= p - tolerance,
        vertical=scores["vertical"] >= p - tolerance,
        scores=scores,
        tolerance=round(tolerance, 4),
    )
    log.info(
        "flip check on %d validation images: %s (tolerance %.3f) -> flip augmentation %s, flip TTA %s",
        n,
        scores,
        tolerance,
        check.flip,
        "allowed" if check.tta != "none" else "not allowed",
    )
    return check
