"""Calling an exported model: a batch of encoded images in, one probability vector or one error each.

Batch inference, the API and the evaluator all go through ``predict_images``, so a
corrupt image among many fails alone, the same way everywhere: a batch whose
in-graph decoding fails is re-run image by image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models.export import INPUT_NAME, OUTPUT_NAME, SIGNATURE
from models.prediction import ErrorCode, ImageError


def load(path: str) -> tf.Module:
    """The loaded SavedModel; keep it, not only its signature, or the variables are freed."""
    return tf.saved_model.load(path)


def predict_images(model: tf.Module, images: Sequence[bytes]) -> list[np.ndarray | ImageError]:
    predict = model.signatures[SIGNATURE]
    try:
        return list(_predict(predict, images))
    except tf.errors.OpError:
        return [_predict_one(predict, image) for image in images]


def _predict(predict, images: Sequence[bytes]) -> np.ndarray:
    return predict(**{INPUT_NAME: tf.constant(list(images), dtype=tf.string)})[OUTPUT_NAME].numpy()


def _predict_one(predict, image: bytes) -> np.ndarray | ImageError:
    try:
        return _predict(predict, [image])[0]
    except tf.errors.InvalidArgumentError as e:
        return ImageError(ErrorCode.DECODE_ERROR, op_message(e))
    except tf.errors.OpError as e:
        return ImageError(ErrorCode.INFERENCE_ERROR, op_message(e))


def op_message(e: tf.errors.OpError) -> str:
    """The first line TF gives about the failing op, without the graph dump."""
    lines = [line.strip() for line in (e.message or "").splitlines() if line.strip()]
    useful = [
        line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "<stack", "[["))
    ]
    return (useful[0] if useful else type(e).__name__)[:200]
