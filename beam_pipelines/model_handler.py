"""A RunInference model handler for our SavedModels: encoded image bytes in, probabilities out.

It wraps Beam's ``TFModelHandlerTensor`` and changes only what must change: the stock
handler loads with ``tf.keras.models.load_model``, which cannot read a Keras 3 export,
so this one loads with ``tf.saved_model.load`` and calls ``models.inference``, where a
batch that fails (one corrupt image among 64) is re-run image by image, so only the
bad image becomes an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

from models import inference
from models.registry import local_saved_model


class SavedModelImageHandler(TFModelHandlerTensor):
    """Each example is one image's encoded bytes; each inference a probability vector or an ImageError."""

    def __init__(self, model_uri: str, batch_size: int = 64, **kwargs: Any):
        kwargs.setdefault("min_batch_size", batch_size)
        kwargs.setdefault("max_batch_size", batch_size)
        super().__init__(model_uri, **kwargs)

    def load_model(self) -> tf.Module:
        # The loaded object, not its signature: a signature alone does not keep the variables alive.
        return inference.load(local_saved_model(self._model_uri))

    def run_inference(
        self, batch: Sequence[bytes], model: tf.Module, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        return [PredictionResult(None, output, self._model_uri) for output in inference.predict_images(model, batch)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(image) for image in batch)

    def get_metrics_namespace(self) -> str:
        return "imgclf_inference"
