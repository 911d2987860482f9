"""Keras networks on OpenVINO: the same float32 outputs (within 1e-4) at 2-4x TensorFlow's speed on a CPU.

Measured here on EfficientNet-Lite0's frozen bottom (blocks 0-4, batches of 64): TensorFlow 49 img/s at
224 px and 24 at 300; OpenVINO with two requests in flight 170 and 96. Training uses it for the passes
that only read a frozen network (the frozen features, the bottom's cached activations, the flip check,
pretraining's cache); serving runs a version's exported IR (``models/runtimes.py``).

Precision is set to f32 explicitly: on CPUs with AMX, OpenVINO would otherwise pick bf16.
OpenVINO's converter sends usage telemetry to Google Analytics unless a consent file says no; this module
swaps in the converter's own no-op stub, so converting never phones home from a user's machine.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from functools import cache
from typing import Literal

import keras
import numpy as np
import openvino as ov
import tensorflow as tf
from openvino.tools.ovc import convert_impl, telemetry_stub, telemetry_utils

convert_impl.tm = telemetry_utils.tm = telemetry_stub  # what the converter uses without openvino-telemetry

CHUNK = 16  # images per inference request; two or more requests keep both cores busy
MIN_IMAGES = 200  # converting takes 2-5 s, which pays from about this many images


Precision = Literal["f32", "bf16"]


def convert_function(function) -> ov.Model:
    """A traced TF function (one float input, one output) to an OpenVINO model.

    From a traced function, not a written SavedModel: 2 s instead of 10 for EfficientNet-Lite0.
    """
    return ov.convert_model(function)


def convert(model: keras.Model) -> ov.Model:
    """``model`` (one float input, one output) to an OpenVINO model with a free batch dimension."""
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    return convert_function(tf.function(lambda x: model(x, training=False)).get_concrete_function(spec))


def compile_cpu(model: ov.Model | str, precision: Precision = "f32") -> ov.CompiledModel:
    """Compiled for throughput on the CPU at ``precision`` (from an IR file's path, or a converted model)."""
    return ov.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "THROUGHPUT"}
    )


@cache
def has_gpu() -> bool:
    """Where TensorFlow has a GPU, it beats OpenVINO's CPU plugin: frozen passes and serving stay on TF."""
    return bool(tf.config.list_physical_devices("GPU"))


class InferQueue:
    """Chunks of a batch in flight on every request the CPU plugin asks for, outputs collected by tag.

    Chunks of exactly ``chunk`` images run on a copy of the model compiled for that batch size: with static
    shapes EfficientNet-Lite0 ran at 179-190 img/s against 164 with a free batch dimension, the outputs equal
    bit for bit. A shorter chunk (a batch's last) runs on the model as it is.

    ``run`` takes the chunks lazily, so a caller that prepares the next chunk (decoding it, say) does so while
    OpenVINO infers the ones already started. One ``run`` at a time: it owns the queues' callbacks.
    """

    def __init__(self, model: ov.Model | str, chunk: int, precision: Precision = "f32"):
        model = ov.Core().read_model(model) if isinstance(model, str) else model
        fixed, shape = model.clone(), model.input(0).get_partial_shape()
        shape[0] = chunk
        fixed.reshape({0: shape})
        self.chunk = chunk
        self._full, self._short = (self._queue(compile_cpu(m, precision)) for m in (fixed, model))
        self._lock = threading.Lock()

    @staticmethod
    def _queue(compiled: ov.CompiledModel) -> ov.AsyncInferQueue:
        return ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def run(self, chunks: Iterable[tuple[Hashable, np.ndarray]]) -> dict[Hashable, np.ndarray]:
        outputs: dict[Hashable, np.ndarray] = {}

        def done(request: ov.InferRequest, tag: Hashable) -> None:
            outputs[tag] = request.get_output_tensor(0).data.copy()

        with self._lock:
            for queue in (self._full, self._short):
                queue.set_callback(done)
            try:
                for tag, x in chunks:
                    (self._full if len(x) == self.chunk else self._short).start_async({0: x}, tag)
            finally:
                self._full.wait_all()
                self._short.wait_all()
        return outputs


class CompiledNetwork:
    """A converted network with Keras's ``predict_on_batch`` and ``output_shape``, so code written for a frozen
    Keras model (``run_on_images``, the activation cache) takes it unchanged."""

    def __init__(self, model: keras.Model):
        self.output_shape = model.output_shape
        self.input_shape = model.input_shape
        self._queue = InferQueue(convert(model), CHUNK)

    def predict_on_batch(self, x) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if not len(x):
            return np.zeros((0, *self.output_shape[1:]), np.float32)
        outputs = self._queue.run((start, x[start : start + CHUNK]) for start in range(0, len(x), CHUNK))
        return np.concatenate([outputs[start] for start in sorted(outputs)])


def frozen(model: keras.Model, images: int | None = None) -> keras.Model | CompiledNetwork:
    """The fastest way to run ``model`` forward only over ``images`` images (None: many): OpenVINO on a CPU;
    the model itself for fewer than ``MIN_IMAGES``, and where TensorFlow has a GPU."""
    if (images is not None and images < MIN_IMAGES) or has_gpu():
        return model
    return CompiledNetwork(model)


def save(model: ov.Model, xml_path: str) -> None:
    """As IR (``.xml`` and ``.bin``), weights kept float32: ``ov.save_model`` halves them to float16 by default."""
    ov.save_model(model, xml_path, compress_to_fp16=False)
