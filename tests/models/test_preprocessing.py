import io

import numpy as np
import tensorflow as tf
from PIL import Image

from models.preprocessing import decode_images


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_image_at_the_model_size_decodes_to_what_resizing_it_would_give():
    pixels = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    resized = tf.image.resize(pixels, [48, 48], method="bilinear", antialias=True).numpy()

    decoded = decode_images(tf.constant([_png(pixels)]), 48).numpy()[0]

    np.testing.assert_array_equal(decoded, resized)
    np.testing.assert_array_equal(decoded, pixels.astype(np.float32))


def test_images_of_other_sizes_are_resized_with_antialiasing():
    rng = np.random.default_rng(1)
    wide, small = rng.integers(0, 256, (40, 96, 3), dtype=np.uint8), rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)

    decoded = decode_images(tf.constant([_png(wide), _png(small)]), 48).numpy()

    for got, pixels in zip(decoded, (wide, small), strict=True):
        expected = tf.image.resize(pixels, [48, 48], method="bilinear", antialias=True).numpy()
        np.testing.assert_array_equal(got, expected)
