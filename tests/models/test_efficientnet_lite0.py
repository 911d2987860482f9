"""The ported ImageNet weights must classify real photos as the original network does."""

import pickle

import numpy as np
import pytest
import tensorflow as tf
from skimage import data

from models import efficientnet_lite0
from models.legacy_torch import load_state_dict

EGYPTIAN_CAT, ESPRESSO = 285, 967


def test_port_predicts_egyptian_cat_and_espresso():
    model = efficientnet_lite0.build(224, include_top=True)
    images = tf.stack([tf.image.resize(img, [224, 224], antialias=True) for img in (data.chelsea(), data.coffee())])
    probabilities = model(images, training=False).numpy()
    assert probabilities.argmax(axis=1).tolist() == [EGYPTIAN_CAT, ESPRESSO]
    assert probabilities.max(axis=1).min() > 0.5


def test_checkpoint_reader_rebuilds_every_tensor_with_its_shape():
    state = load_state_dict(efficientnet_lite0.imagenet_checkpoint_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    total = sum(v.size for k, v in state.items() if "num_batches" not in k and "running" not in k)
    assert total == pytest.approx(4.65e6, rel=0.02)
    assert all(np.isfinite(v).all() for v in state.values())


def test_checkpoint_reader_refuses_code_in_a_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f)
        pickle.dump(1001, f)
        pickle.dump({}, f)
        pickle.dump(Evil(), f)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        load_state_dict(str(path))


def test_split_network_computes_exactly_what_the_whole_one_does():
    full = efficientnet_lite0.build(96)
    bottom, top = efficientnet_lite0.build_split(96, 5)
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(full(x, training=False), top(bottom(x, training=False), training=False), atol=1e-5)
    assert bottom.output.shape[1:] == (12, 12, 40)


def test_a_gem_top_loads_a_backbone_saved_with_average_pooling(tmp_path):
    bottom, top = efficientnet_lite0.build_split(96, 12, weights=None)
    efficientnet_lite0.save_weights(str(tmp_path / "backbone.npz"), bottom, top)
    _, gem_top = efficientnet_lite0.build_split(96, 12, str(tmp_path / "backbone.npz"), pooling="gem")
    np.testing.assert_array_equal(
        gem_top.get_layer("conv_head").get_weights()[0], top.get_layer("conv_head").get_weights()[0]
    )
    assert (
        gem_top.output.shape[1:] == (efficientnet_lite0.FEATURE_DIM,) and float(gem_top.get_layer("gem_pool").p) == 3.0
    )
