"""A RunInference model handler for our SavedModels: encoded image bytes in, probabilities out.

It wraps Beam's ``TFModelHandlerTensor`` and changes only what must change: the stock
handler loads with ``tf.keras.models.load_model``, which cannot read a Keras 3 export,
so this one loads with ``tf.saved_model.load`` and calls the ``serving_default``
signature on a whole batch. A batch that fails (one corrupt image among 64) is re-run
image by image, so only the bad image becomes an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

from models.export import INPUT_NAME, OUTPUT_NAME, SIGNATURE
from models.prediction import ErrorCode, ImageError
from models.registry import local_saved_model


class SavedModelImageHandler(TFModelHandlerTensor):
    """Each example is one image's encoded bytes; each inference a probability vector or an ImageError."""

    def __init__(self, model_uri: str, batch_size: int = 64, **kwargs: Any):
        kwargs.setdefault("min_batch_size", batch_size)
        kwargs.setdefault("max_batch_size", batch_size)
        super().__init__(model_uri, **kwargs)

    def load_model(self) -> tf.Module:
        # The loaded object, not its signature: a signature alone does not keep the variables alive.
        return tf.saved_model.load(local_saved_model(self._model_uri))

    def run_inference(
        self, batch: Sequence[bytes], model: tf.Module, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        predict = model.signatures[SIGNATURE]
        try:
            outputs: list[np.ndarray | ImageError] = list(_predict(predict, batch))
        except tf.errors.OpError:
            outputs = [_predict_one(predict, image) for image in batch]
        return [PredictionResult(None, output, self._model_uri) for output in outputs]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(image) for image in batch)

    def get_metrics_namespace(self) -> str:
        return "imgclf_inference"


def _predict(predict, images: Sequence[bytes]) -> np.ndarray:
    return predict(**{INPUT_NAME: tf.constant(list(images), dtype=tf.string)})[OUTPUT_NAME].numpy()


def _predict_one(predict, image: bytes) -> np.ndarray | ImageError:
    try:
        return _predict(predict, [image])[0]
    except tf.errors.InvalidArgumentError as e:
        return ImageError(ErrorCode.DECODE_ERROR, _op_message(e))
    except tf.errors.OpError as e:
        return ImageError(ErrorCode.INFERENCE_ERROR, _op_message(e))


def _op_message(e: tf.errors.OpError) -> str:
    """The first line TF gives about the failing op, without the graph dump."""
    lines = [line.strip() for line in (e.message or "").splitlines() if line.strip()]
    useful = [
        line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "<stack", "[["))
    ]
    return (useful[0] if useful else type(e).__name__)[:200]
