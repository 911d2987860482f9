"""Running a registered version on TensorFlow (its SavedModel) or on OpenVINO (its IR), as ``runtime`` says.

Every version has a SavedModel that takes encoded bytes and decodes them in its graph. A version may
also have an OpenVINO IR of the same network on decoded images (``export.export_openvino``), kept only
if the parity gate found the same probabilities and decisions on the version's test split
(``parity.py``); on a CPU it runs about twice as fast. Its images are decoded by the same TF ops the
SavedModel's graph runs, so both runtimes see the same pixels: decoding elsewhere (Pillow decodes
JPEG with the accurate DCT, TF with the fast one) changes decisions on its own.

``runtime`` is ``tf``, ``openvino``, or ``auto``: the faster of the two in the gate's own timing when
the artifact passed, TensorFlow otherwise and wherever TensorFlow has a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import tensorflow as tf

from models import inference, openvino_runtime, storage
from models.errors import ImgclfError
from models.export import OPENVINO_DIR, OPENVINO_FILE
from models.prediction import ErrorCode, ImageError
from models.preprocessing import decode_images
from models.registry import ModelCard, ResolvedModel, local_saved_model

log = logging.getLogger("imgclf.inference")

Runtime = Literal["tf", "openvino", "auto"]
# Images per step: the next chunk decodes while OpenVINO infers this one. Requests of 4-8 images ran the
# network at 160-166 img/s here, 16 at 113-136 and 64 at 66 (EfficientNet-Lite0, 224 px, 2 cores).
CHUNK = 8


class RuntimeUnavailable(ImgclfError):
    """The runtime asked for cannot run this version (no artifact, or it failed the gate)."""


class Runner(Protocol):
    runtime: str

    def predict_images(self, images: Sequence[bytes]) -> list[np.ndarray | ImageError]:
        """One probability vector per image, or the image's error; never fails the batch for one image."""
        ...


class TensorFlowRunner:
    runtime = "tf"

    def __init__(self, saved_model_dir: str):
        self.module = inference.load(saved_model_dir)

    def predict_images(self, images: Sequence[bytes]) -> list[np.ndarray | ImageError]:
        return inference.predict_images(self.module, images)


class OpenVinoRunner:
    """Decodes with TF, infers with OpenVINO, overlapping the two; a corrupt image fails alone."""

    runtime = "openvino"

    def __init__(self, xml_path: str, image_size: int, precision: openvino_runtime.Precision = "f32"):
        self.precision = precision
        self._queue = openvino_runtime.InferQueue(xml_path, CHUNK, precision)
        self._decode = tf.function(  # one trace for every chunk size
            lambda raw: decode_images(raw, image_size), input_signature=[tf.TensorSpec([None], tf.string)]
        )

    def predict_images(self, images: Sequence[bytes]) -> list[np.ndarray | ImageError]:
        results: list[np.ndarray | ImageError | None] = [None] * len(images)

        def decoded_chunks():  # decoded one chunk ahead of the inference queue
            for start in range(0, len(images), CHUNK):
                pixels, indices = self._decoded(images[start : start + CHUNK], start, results)
                if indices:
                    yield tuple(indices), pixels

        for indices, out in self._queue.run(decoded_chunks()).items():
            for row, i in enumerate(indices):
                results[i] = out[row]
        failed = ImageError(ErrorCode.INFERENCE_ERROR, "OpenVINO returned no output")
        return [failed if r is None else r for r in results]

    def _decoded(self, chunk: Sequence[bytes], offset: int, results: list) -> tuple[np.ndarray | None, list[int]]:
        """The chunk's pixels and their indices; an image that does not decode gets its error in ``results``."""
        try:
            return self._decode(tf.constant(list(chunk), tf.string)).numpy(), list(range(offset, offset + len(chunk)))
        except tf.errors.OpError:
            pass
        pixels, indices = [], []
        for i, raw in enumerate(chunk, start=offset):
            try:
                pixels.append(self._decode(tf.constant([raw], tf.string)).numpy()[0])
                indices.append(i)
            except tf.errors.InvalidArgumentError as e:
                results[i] = ImageError(ErrorCode.DECODE_ERROR, inference.op_message(e))
            except tf.errors.OpError as e:
                results[i] = ImageError(ErrorCode.INFERENCE_ERROR, inference.op_message(e))
        return (np.stack(pixels) if pixels else None), indices


def runtime_for(card: ModelCard, requested: Runtime) -> str:
    """``tf`` or ``openvino`` for this version; RuntimeUnavailable if ``openvino`` was asked for and it cannot."""
    if requested == "tf":
        return "tf"
    check = card.runtimes.get("openvino")
    if requested == "openvino":
        if check is None or not check.passed:
            why = check.reason if check else "it was exported without one"
            raise RuntimeUnavailable(
                f"{card.name} v{card.version} has no OpenVINO artifact that passed the parity gate: {why}"
            )
        return "openvino"
    if check is None or not check.passed or openvino_runtime.has_gpu():
        return "tf"
    faster = (check.images_per_s or 0) > (check.tf_images_per_s or 0)
    return "openvino" if faster else "tf"


def openvino_uri(saved_model_uri: str) -> str:
    """A version's IR folder, beside its ``saved_model/``."""
    return storage.join(saved_model_uri.rstrip("/").rsplit("/", 1)[0], OPENVINO_DIR)


def load(model: ResolvedModel, requested: Runtime = "auto") -> Runner:
    """A runner for a resolved version, copied down from ``gs://`` once. With ``auto``, an OpenVINO artifact that
    does not load (files missing from a partial copy) leaves the version on TensorFlow: slower, same answers."""
    if runtime_for(model.card, requested) == "openvino":
        try:
            folder = local_saved_model(openvino_uri(model.saved_model_uri), marker=OPENVINO_FILE)
            precision = model.card.runtimes["openvino"].precision
            return OpenVinoRunner(str(Path(folder, OPENVINO_FILE)), model.card.image_size, precision)
        except Exception as e:
            if requested == "openvino":
                raise
            log.error(
                "%s v%d runs on TensorFlow: its OpenVINO artifact does not load: %s", model.name, model.version, e
            )
    return TensorFlowRunner(local_saved_model(model.saved_model_uri))


def describe(card: ModelCard, runtime: str) -> str:
    """A line on what runs a version and why, for logs and the demo."""
    check = card.runtimes.get("openvino")
    if runtime == "openvino" and check is not None:
        rate = f", {check.images_per_s:.0f} img/s against TF's {check.tf_images_per_s:.0f} in the gate"
        return f"OpenVINO {check.precision} (passed the parity gate: {check.reason}{rate})"
    if check is None:
        return "TensorFlow (no OpenVINO artifact)"
    if not check.passed:
        return f"TensorFlow (the OpenVINO artifact was refused: {check.reason})"
    return "TensorFlow"
