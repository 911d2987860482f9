"""The frozen bottom that serves both the head's features and fine-tuning's first cached view."""

import numpy as np

from models import efficientnet_lite0
from models.manifest import Example
from models.training.data import run_on_images
from models.training.fine_tune import FrozenBottom, cache_activations
from tests.helpers import colour_image


def test_the_frozen_bottom_gives_the_backbones_features_once_per_image_and_only_decodes_test_images():
    splits = ["train", "train", "validation", "test", "train", "test", "validation"]
    data = [colour_image(c, i) for i, c in enumerate(["red", "blue"] * 4)][: len(splits)]
    data[1] = data[5] = b"not an image"  # one unreadable training image, one unreadable test image
    examples = [Example(image_uri=f"{i}.png", labels=("red",), split=s) for i, s in enumerate(splits)]

    frozen = FrozenBottom(64, 15, None)
    features, decoded = frozen.features(examples, data)

    assert decoded == [0, 2, 3, 4, 6]
    backbone = efficientnet_lite0.build(image_size=64, weights="imagenet")
    expected, _ = run_on_images(backbone, [data[i] for i in (0, 2, 4, 6)], 64, "reference")
    np.testing.assert_allclose(features[[0, 1, 3, 4]], expected, rtol=0.02, atol=0.02)  # float16 activations
    assert not features[2].any()  # the test image: decoded, never featurised
    assert [len(frozen.first_view[s]) for s in ("train", "validation")] == [2, 2]

    cached = cache_activations(
        frozen.bottom,
        [data[0], data[4]],
        image_size=64,
        views=3,
        augment=lambda x, training: x,
        first=frozen.first_view["train"],
    )
    assert cached.shape[:2] == (2, 3)
    np.testing.assert_array_equal(cached[:, 0], frozen.first_view["train"])  # reused, not recomputed
    np.testing.assert_allclose(cached[:, 1], cached[:, 0], atol=0.02)  # an identity "augmentation" recomputes it
