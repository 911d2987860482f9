"""The flip check: mirrored validation images scored by a real model decide flip augmentation and TTA."""

import io
from dataclasses import replace

import keras
import numpy as np
from PIL import Image

from models.label_spec import LabelSpec, Task
from models.manifest import Example
from models.training.data import TrainingData
from models.training.symmetry import check_flips, right_share


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _left_or_right_bright(n: int) -> TrainingData:
    """Label 'left' when the left half is the bright one: mirroring left-right swaps the label, top-bottom not."""
    examples, data = [], []
    for i in range(n):
        side = "left" if i % 2 else "right"
        image = np.full((32, 32, 3), 30)
        if side == "left":
            image[:, :16] = 220
        else:
            image[:, 16:] = 220
        data.append(_png(image))
        examples.append(Example(f"{i}.png", (side,), "validation", i + 1))
    return TrainingData(LabelSpec(task=Task.BINARY, labels=["right", "left"]), examples, data)


def _left_minus_right() -> keras.Model:
    """p(left) from the brightness difference of the two halves: a model that is right on unflipped images."""
    x = keras.Input((32, 32, 3))
    diff = keras.layers.Lambda(
        lambda t: keras.ops.mean(t[:, :, :16], axis=(1, 2, 3)) - keras.ops.mean(t[:, :, 16:], axis=(1, 2, 3))
    )(x)
    p = keras.layers.Lambda(lambda d: keras.ops.sigmoid(d[:, None] / 10.0))(diff)
    return keras.Model(x, p)


def test_a_flip_that_changes_the_label_is_refused_and_one_that_keeps_it_allowed():
    check = check_flips(_left_minus_right(), _left_or_right_bright(20), 32)
    assert check.scores == {"as is": 1.0, "horizontal": 0.0, "vertical": 1.0}
    assert (check.horizontal, check.vertical, check.flip, check.tta) == (False, True, "vertical", "none")


def test_without_a_validation_split_nothing_is_flipped():
    data = _left_or_right_bright(4)
    data = TrainingData(data.spec, [replace(e, split="train") for e in data.examples], data.data)
    assert check_flips(_left_minus_right(), data, 32) is None


def test_right_share_counts_whole_images_for_multilabel():
    spec = LabelSpec(task=Task.MULTILABEL, labels=["a", "b"])
    y = np.array([[1, 0], [1, 1]], np.float32)
    raw = np.array([[0.9, 0.2], [0.8, 0.3]])
    assert right_share(spec, raw, y) == 0.5
