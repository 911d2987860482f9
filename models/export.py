"""Export a trained classifier as a SavedModel that takes encoded image bytes, and as OpenVINO IR.

The ``serving_default`` signature, ``(image_bytes: string[B]) -> probabilities[B, L]``,
carries decoding and resizing inside the graph, so every consumer sends raw file bytes.

The OpenVINO artifact is the same network on decoded float images: the SavedModel's decoding ops
(DecodeImage, ScaleAndTranslate) have no conversion rule, and decoding stays on those TF ops anyway
(``models/runtimes.py``), so both runtimes see the same pixels. It is registered only if the parity
gate passes (``models/parity.py``).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from models import openvino_runtime
from models.label_spec import LabelSpec, Task
from models.preprocessing import decode_images

SIGNATURE = "serving_default"
INPUT_NAME = "image_bytes"
OUTPUT_NAME = "probabilities"
OPENVINO_DIR = "openvino"  # beside saved_model/ in a version
OPENVINO_FILE = "model.xml"  # and model.bin, its weights


def _probabilities(classifier, spec: LabelSpec, images: tf.Tensor) -> tf.Tensor:
    """One probability per label, in label order, for decoded float images."""
    probabilities = classifier(images, training=False)
    if spec.task is Task.BINARY:  # one sigmoid unit -> [p(negative), p(positive)]
        probabilities = tf.concat([1.0 - probabilities, probabilities], axis=-1)
    return probabilities


def export_saved_model(classifier: keras.Model, spec: LabelSpec, image_size: int, path: str) -> None:
    """``classifier`` maps float RGB [B, size, size, 3] in [0, 255] to its head's output."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def serve(image_bytes):
        return {OUTPUT_NAME: _probabilities(classifier, spec, decode_images(image_bytes, image_size))}

    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(path, verbose=False)


def export_openvino(classifier: keras.Model, spec: LabelSpec, image_size: int, path: str) -> str:
    """The same network as the SavedModel after decoding, as OpenVINO IR under the folder ``path``, in float32
    (``save_model`` would halve the weights to float16 by default). Returns the IR's path."""
    network = getattr(classifier, "stacked", classifier)  # TTA's map_fn over views does not convert; this does
    spec_in = tf.TensorSpec([None, image_size, image_size, 3], tf.float32)
    function = tf.function(lambda images: _probabilities(network, spec, images)).get_concrete_function(spec_in)
    xml = Path(path, OPENVINO_FILE)
    xml.parent.mkdir(parents=True, exist_ok=True)
    openvino_runtime.save(openvino_runtime.convert_function(function), str(xml))
    return str(xml)


def load_signature(path: str):
    """The serving function of a local SavedModel: call it as ``fn(image_bytes=batch)``."""
    return tf.saved_model.load(path).signatures[SIGNATURE]
