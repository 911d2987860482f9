"""Generalized-mean pooling: between the average and the maximum, with p learned."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.pooling import GeneralizedMeanPooling, global_pool

X = np.random.default_rng(0).uniform(0, 6, (2, 5, 5, 4)).astype(np.float32)


def _gem(p: float) -> np.ndarray:
    return keras.ops.convert_to_numpy(GeneralizedMeanPooling(p)(X))


def test_gem_is_the_average_at_p_1_and_tends_to_the_maximum_as_p_grows():
    np.testing.assert_allclose(_gem(1.0), X.mean(axis=(1, 2)), rtol=1e-5)
    mean, gem3, gem20, peak = X.mean(axis=(1, 2)), _gem(3.0), _gem(20.0), X.max(axis=(1, 2))
    assert np.all(mean < gem3) and np.all(gem3 < gem20) and np.all(gem20 <= peak)
    np.testing.assert_allclose(gem20, peak, rtol=0.15)  # 25 positions: at worst 25 ** (-1 / 20) of the peak


def test_gem_never_pools_below_the_average_whatever_p_is_trained_to():
    for p in (0.5, 0.0, -2.0):
        np.testing.assert_allclose(_gem(p), X.mean(axis=(1, 2)), rtol=1e-5)


def test_gem_learns_its_exponent():
    layer = GeneralizedMeanPooling()
    with tf.GradientTape() as tape:
        out = layer(tf.constant(X))
    (grad,) = tape.gradient(out, [layer.p])
    assert np.isfinite(grad.numpy()) and grad.numpy() != 0


def test_a_model_with_gem_survives_a_keras_round_trip(tmp_path):
    inputs = keras.Input((5, 5, 4))
    model = keras.Model(inputs, global_pool(inputs, "gem"))
    model.get_layer("gem_pool").p.assign(2.5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(X), model.predict_on_batch(X), rtol=1e-6)


def test_an_unknown_pooling_is_named_in_the_error():
    with pytest.raises(ValueError, match="'max'"):
        global_pool(keras.Input((5, 5, 4)), "max")
