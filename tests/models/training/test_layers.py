"""Test-time augmentation: its loop-free form, which OpenVINO converts, gives the same mean over views."""

import keras
import numpy as np
import pytest

from models.training.layers import TTA


@pytest.mark.parametrize("mode", ["flips", "dihedral"])
def test_stacked_views_give_the_same_mean_as_the_map_over_views(mode):
    keras.utils.set_random_seed(0)
    inner = keras.Sequential(
        [keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    tta = TTA(inner, mode)
    x = np.random.default_rng(0).uniform(0, 255, (5, 12, 12, 3)).astype(np.float32)

    looped, stacked = np.asarray(tta(x)), np.asarray(tta.stacked(x))

    assert looped.shape == stacked.shape == (5, 3)
    np.testing.assert_allclose(stacked, looped, rtol=1e-5, atol=1e-4)
    assert not np.allclose(looped, np.asarray(inner(x)), atol=1e-3)  # the views do change the answer
