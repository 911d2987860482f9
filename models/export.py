"""Export a trained classifier as a SavedModel that takes encoded image bytes.

The ``serving_default`` signature, ``(image_bytes: string[B]) -> probabilities[B, L]``,
carries decoding and resizing inside the graph, so every consumer sends raw file bytes.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from models.label_spec import LabelSpec, Task
from models.preprocessing import decode_images

SIGNATURE = "serving_default"
INPUT_NAME = "image_bytes"
OUTPUT_NAME = "probabilities"


def export_saved_model(classifier: keras.Model, spec: LabelSpec, image_size: int, path: str) -> None:
    """``classifier`` maps float RGB [B, size, size, 3] in [0, 255] to its head's output."""
    binary = spec.task is Task.BINARY

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def serve(image_bytes):
        probabilities = classifier(decode_images(image_bytes, image_size), training=False)
        if binary:  # one sigmoid unit -> [p(negative), p(positive)], in label order
            probabilities = tf.concat([1.0 - probabilities, probabilities], axis=-1)
        return {OUTPUT_NAME: probabilities}

    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(path, verbose=False)


def load_signature(path: str):
    """The serving function of a local SavedModel: call it as ``fn(image_bytes=batch)``."""
    return tf.saved_model.load(path).signatures[SIGNATURE]
