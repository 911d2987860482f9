"""A RunInference model handler for our SavedModels: encoded image bytes in, probabilities out.

It wraps Beam's ``TFModelHandlerTensor`` and changes only what must change:

- the stock handler loads with ``tf.keras.models.load_model``, which cannot read a Keras 3
  export, so this one loads with ``tf.saved_model.load`` and calls ``models.inference``,
  where a batch that fails (one corrupt image among 64) is re-run image by image;
- loaded models are kept per process. Beam's ``Shared`` cache holds a model only while a
  DoFn references it, and the local streaming runner makes new DoFns per bundle, so the
  stock handler reloaded the model every bundle (23 loads of 1.2 s in 35 s, measured);
- with ``follow`` set it follows a registry alias while it runs (``model_updates.py``):
  a new version that fails to load leaves the previous one serving, and each result
  names the version that actually produced it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

from beam_pipelines.model_updates import FollowAlias, alias_target
from models import inference
from models.errors import describe
from models.registry import local_saved_model

log = logging.getLogger("imgclf.inference")

_KEEP = 2  # the serving version and the one it is being replaced by
_cache: OrderedDict[str, LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A loaded SavedModel and the URI it came from (the module alone would not say)."""

    uri: str
    module: tf.Module


def load_cached(uri: str) -> LoadedModel:
    """The model at ``uri``, loaded once per process; the least recently used beyond two is dropped."""
    with _cache_lock:
        if uri in _cache:
            _cache.move_to_end(uri)
            return _cache[uri]
        loaded = LoadedModel(uri, inference.load(local_saved_model(uri)))
        _cache[uri] = loaded
        while len(_cache) > _KEEP:
            _cache.popitem(last=False)
        return loaded


_serving: dict[FollowAlias, LoadedModel] = {}  # per process: the version each followed alias serves


def _following(follow: FollowAlias, loaded_at_start: LoadedModel) -> LoadedModel:
    """The version to run now: the alias's, once it has loaded; until then, the one serving."""
    current = _serving.get(follow, loaded_at_start)
    target = alias_target(follow)
    if target and target != current.uri:
        try:
            current = load_cached(target)
        except Exception as e:  # a corrupt SavedModel: keep serving, retry at the next read
            log.error("could not load %s, so %s keeps serving: %s", target, current.uri, describe(e))
    _serving[follow] = current
    return current


class SavedModelImageHandler(TFModelHandlerTensor):
    """Each example is one image's encoded bytes; each inference a probability vector or an ImageError.

    ``PredictionResult.model_id`` is the SavedModel URI of the version that ran, so a
    pipeline whose model is swapped mid-stream can label each record with its version.
    """

    def __init__(self, model_uri: str, batch_size: int = 64, follow: FollowAlias | None = None, **kwargs: Any):
        kwargs.setdefault("min_batch_size", batch_size)
        kwargs.setdefault("max_batch_size", batch_size)
        super().__init__(model_uri, **kwargs)
        self._follow = follow

    def load_model(self) -> LoadedModel:
        return load_cached(self._model_uri)

    def run_inference(
        self, batch: Sequence[bytes], model: LoadedModel, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        if self._follow:
            model = _following(self._follow, model)
        return [PredictionResult(None, out, model.uri) for out in inference.predict_images(model.module, batch)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(image) for image in batch)

    def get_metrics_namespace(self) -> str:
        return "imgclf_inference"
