"""Global pooling of a backbone's last feature map, the choice a fine-tuned classifier makes.

Average pooling dilutes a small local feature (a crack in a corner of a solar cell) over the
whole map. Generalized-mean (GeM) pooling, ``mean(x ** p) ** (1 / p)``, weighs the strongest
responses more: ``p = 1`` is the average, large ``p`` tends to the maximum. ``p`` starts at 3
(as in image retrieval, Radenovic et al. 2018) and is learned with the rest when fine-tuning.
"""

from __future__ import annotations

from typing import Literal

import keras
from keras import layers, ops

Pooling = Literal["average", "gem"]


@keras.saving.register_keras_serializable(package="imgclf")
class GeneralizedMeanPooling(layers.Layer):
    """GeM over height and width of non-negative activations (ReLU6 here), clamped above 0 for the power."""

    def __init__(self, p: float = 3.0, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.initial_p, self.epsilon = p, epsilon

    def build(self, input_shape):
        self.p = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial_p), name="p")

    def call(self, x):
        p = ops.maximum(self.p, 1.0)  # never below the average, and 1 / p stays finite whatever training does
        x = ops.maximum(x, self.epsilon)
        return ops.power(ops.mean(ops.power(x, p), axis=(1, 2)), 1.0 / p)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "p": self.initial_p, "epsilon": self.epsilon}


def global_pool(x, pooling: Pooling = "average"):
    if pooling == "gem":
        return GeneralizedMeanPooling(name="gem_pool")(x)
    if pooling == "average":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    raise ValueError(f"unknown pooling {pooling!r}; choose 'average' or 'gem'")
