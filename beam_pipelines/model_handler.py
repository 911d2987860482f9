"""A RunInference model handler for registered versions: encoded image bytes in, probabilities out.

It wraps Beam's ``TFModelHandlerTensor`` and changes only what must change:

- the stock handler loads with ``tf.keras.models.load_model``, which cannot read a Keras 3
  export, so this one loads a ``models.runtimes`` runner: the SavedModel on TensorFlow, or
  the version's OpenVINO artifact when ``runtime`` says so (``auto``: the faster one that
  passed the parity gate); a batch that fails (one corrupt image among 64) fails image by image;
- loaded models are kept per process. Beam's ``Shared`` cache holds a model only while a
  DoFn references it, and the local streaming runner makes new DoFns per bundle, so the
  stock handler reloaded the model every bundle (23 loads of 1.2 s in 35 s, measured);
- with ``follow`` set it follows a registry alias while it runs (``model_updates.py``):
  a new version that fails to load leaves the previous one serving, and each result
  names the version and the runtime that actually produced it (``served_by``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

from beam_pipelines.model_updates import FollowAlias, alias_target
from models import runtimes
from models.errors import describe
from models.registry import resolve_saved_model

log = logging.getLogger("imgclf.inference")

_KEEP = 2  # the serving version and the one it is being replaced by
_cache: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A loaded version and the SavedModel URI it is known by (the runner alone would not say)."""

    uri: str
    runner: runtimes.Runner

    @property
    def served_by(self) -> str:
        return served_by(self.runner.runtime, self.uri)


def served_by(runtime: str, saved_model_uri: str) -> str:
    """A result's ``model_id``: the runtime, a space, then the version's SavedModel URI."""
    return f"{runtime} {saved_model_uri}"


def parse_served_by(model_id: str) -> tuple[str, str]:
    """(runtime, SavedModel URI) of a result's ``model_id``; runtime names have no spaces, URIs may."""
    runtime, _, uri = model_id.partition(" ")
    return runtime, uri


def load_cached(uri: str, runtime: runtimes.Runtime = "auto") -> LoadedModel:
    """The version at ``uri`` on ``runtime``, loaded once per process; the least recently used beyond two is
    dropped."""
    key = (uri, runtime)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        loaded = LoadedModel(uri, runtimes.load(resolve_saved_model(uri), runtime))
        _cache[key] = loaded
        while len(_cache) > _KEEP:
            _cache.popitem(last=False)
        return loaded


_serving: dict[FollowAlias, LoadedModel] = {}  # per process: the version each followed alias serves


def _following(follow: FollowAlias, loaded_at_start: LoadedModel, runtime: runtimes.Runtime) -> LoadedModel:
    """The version to run now: the alias's, once it has loaded; until then, the one serving."""
    current = _serving.get(follow, loaded_at_start)
    target = alias_target(follow)
    if target and target != current.uri:
        try:
            current = load_cached(target, runtime)
        except Exception as e:  # a corrupt SavedModel: keep serving, retry at the next read
            log.error("could not load %s, so %s keeps serving: %s", target, current.uri, describe(e))
    _serving[follow] = current
    return current


class ImageModelHandler(TFModelHandlerTensor):
    """Each example is one image's encoded bytes; each inference a probability vector or an ImageError.

    ``PredictionResult.model_id`` names the runtime and the SavedModel URI of the version that ran
    (``parse_served_by``), so a pipeline whose model is swapped mid-stream can label each record.
    """

    def __init__(
        self,
        model_uri: str,
        batch_size: int = 64,
        follow: FollowAlias | None = None,
        runtime: runtimes.Runtime = "auto",
        **kwargs: Any,
    ):
        kwargs.setdefault("min_batch_size", batch_size)
        kwargs.setdefault("max_batch_size", batch_size)
        super().__init__(model_uri, **kwargs)
        self._follow = follow
        self._runtime = runtime

    def load_model(self) -> LoadedModel:
        return load_cached(self._model_uri, self._runtime)

    def run_inference(
        self, batch: Sequence[bytes], model: LoadedModel, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        if self._follow:
            model = _following(self._follow, model, self._runtime)
        return [PredictionResult(None, out, model.served_by) for out in model.runner.predict_images(batch)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(image) for image in batch)

    def get_metrics_namespace(self) -> str:
        return "imgclf_inference"
