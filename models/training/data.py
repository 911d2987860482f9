"""Training data: examples and their label spec, the images' bytes, and one pass of a model over them.

Every image is read and its header checked up front, so a bad row is named before any
training starts; full decoding waits for the one pass that needs it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import keras
import numpy as np
import tensorflow as tf

from models.image_checks import check_image, read_image
from models.label_spec import LabelSpec, Task, infer_task
from models.manifest import SPLITS, Example, ManifestError, check_labels, examples_from_folder, read_manifest
from models.openvino_runtime import CompiledNetwork
from models.prediction import ErrorCode, ImageError
from models.preprocessing import decode_image
from models.registry import ModelCard
from models.train_config import TrainConfig

log = logging.getLogger("imgclf.train")


@dataclass(frozen=True)
class TrainingData:
    """Examples with their encoded images, kept in one order; passed whole instead of parallel lists."""

    spec: LabelSpec
    examples: list[Example]
    data: list[bytes]
    skipped: list[str] = field(default_factory=list)

    @cached_property
    def by_split(self) -> dict[str, list[int]]:
        return {s: [i for i, e in enumerate(self.examples) if e.split == s] for s in SPLITS}

    def split(self, name: str) -> list[Example]:
        return [self.examples[i] for i in self.by_split[name]]

    def images(self, name: str) -> list[bytes]:
        return [self.data[i] for i in self.by_split[name]]

    def targets(self, name: str) -> np.ndarray:
        return targets(self.spec, self.split(name))

    def counts(self) -> dict[str, int]:
        return {s: len(i) for s, i in self.by_split.items()}

    def keep(self, indices: Sequence[int], skipped: Sequence[str] = ()) -> TrainingData:
        return TrainingData(
            self.spec,
            [self.examples[i] for i in indices],
            [self.data[i] for i in indices],
            self.skipped + list(skipped),
        )


def load_examples(config: TrainConfig) -> list[Example]:
    if bool(config.manifest) == bool(config.data_dir):
        raise ValueError("give exactly one of --manifest or --data")
    return read_manifest(config.manifest) if config.manifest else examples_from_folder(config.data_dir)


def resolve_label_spec(examples: Sequence[Example], config: TrainConfig, parent: ModelCard | None) -> LabelSpec:
    """The label order and task: from --labels, else the production version, else the data."""
    seen = sorted({label for e in examples for label in e.labels})
    if config.labels:
        known = list(config.labels)
    elif parent is not None:
        known = list(parent.label_spec.labels)
    else:
        known = seen
    if config.allow_new_labels:
        known += [label for label in seen if label not in known]
    else:
        check_labels(examples, known)
    task = config.task or (parent.label_spec.task if parent and not config.labels else None)
    task = task or infer_task([e.labels for e in examples])
    if task is not Task.MULTILABEL:
        wrong = [e.row for e in examples if len(e.labels) != 1]
        if wrong:
            raise ManifestError(
                f"a {task.value} task needs exactly one label per image, but rows {wrong[:10]}"
                f"{' ...' if len(wrong) > 10 else ''} have none or several. Fix them, or pass --task multilabel."
            )
    try:
        return LabelSpec(task=task, labels=known)
    except ValueError as e:
        raise ManifestError(f"cannot build a {task.value} label spec from labels {known}: {e}") from None


def load_images(examples: Sequence[Example], config: TrainConfig) -> tuple[list[Example], list[bytes], list[str]]:
    """Reads every image and checks its header; full decoding waits for the one pass that needs it."""
    kept, data, bad = [], [], []
    started = time.monotonic()
    for i, example in enumerate(examples, start=1):
        try:
            raw = read_image(example.image_uri, config.max_image_bytes)
            check_image(raw, config.max_image_bytes, config.max_image_pixels)
        except ImageError as e:
            bad.append(bad_row(example, e))
            continue
        kept.append(example)
        data.append(raw)
        if i % 500 == 0 or i == len(examples):
            log.info("read %d/%d images (%.0f img/s)", i, len(examples), i / (time.monotonic() - started))
    refuse_or_skip(bad, len(examples), config)
    return kept, data, bad


def bad_row(example: Example, error: ImageError) -> str:
    return f"row {example.row} ({example.image_uri}): {error}"


def refuse_or_skip(bad: list[str], total: int, config: TrainConfig) -> None:
    if bad and not config.skip_bad_rows:
        raise ManifestError(
            f"{len(bad)} of {total} images cannot be used:\n  "
            + "\n  ".join(bad[:20])
            + ("\n  ..." if len(bad) > 20 else "")
            + "\nFix or remove these rows, or pass --skip-bad-rows to train without them."
        )
    for line in bad:
        log.warning("skipping %s", line)


def decode_error(raw: bytes, image_size: int) -> ImageError:
    try:
        decode_image(tf.constant(raw), image_size)
    except tf.errors.InvalidArgumentError as e:
        return ImageError(ErrorCode.DECODE_ERROR, str(e.message).splitlines()[0][:200])
    return ImageError(ErrorCode.DECODE_ERROR, "failed to decode in a batch")


def fingerprint(examples: Sequence[Example], data: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for e, raw in sorted(zip(examples, data, strict=False), key=lambda pair: pair[0].image_uri):
        h.update(f"{hashlib.sha256(raw).hexdigest()} {';'.join(e.labels)} {e.split}\n".encode())
    return h.hexdigest()


def targets(spec: LabelSpec, examples: Sequence[Example]) -> np.ndarray:
    y = spec.encode([e.labels for e in examples])
    return y.astype(np.float32)[:, None] if spec.task is Task.BINARY else y


def full_probabilities(spec: LabelSpec, raw: np.ndarray) -> np.ndarray:
    """Head outputs to one probability per label, as the exported signature returns them."""
    return np.concatenate([1 - raw, raw], axis=1) if spec.task is Task.BINARY else raw


def run_on_images(
    model: keras.Model | CompiledNetwork,
    data: Sequence[bytes],
    image_size: int,
    what: str,
    transform=None,
    dtype=np.float32,
) -> tuple[np.ndarray, list[int]]:
    """``model``'s outputs for encoded images, and the indices of the images that decoded.

    Each image is decoded once, here; one that fails is left out (its index missing)
    rather than failing the whole batch. ``transform`` maps a decoded batch first (a flip, say);
    ``dtype``: each batch's outputs are kept as that (float16 for large activations).
    """
    if not data:
        return np.zeros((0, model.output_shape[-1]), np.float32), []
    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(data)), tf.constant(list(data), dtype=tf.string)))
        .map(lambda i, raw: (i, decode_image(raw, image_size)), num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(64)
    )
    if transform is not None:
        dataset = dataset.map(lambda i, x: (i, transform(x)), num_parallel_calls=tf.data.AUTOTUNE)
    chunks, decoded, started = [], [], time.monotonic()
    for indices, images in dataset.prefetch(tf.data.AUTOTUNE):
        chunks.append(np.asarray(model.predict_on_batch(images), dtype=dtype))
        decoded.extend(indices.numpy().tolist())
        if len(chunks) % 8 == 0:
            log.info(
                "%s: %d/%d images (%.0f img/s)",
                what,
                len(decoded),
                len(data),
                len(decoded) / (time.monotonic() - started),
            )
    log.info("%s: %d/%d images done in %.0fs", what, len(decoded), len(data), time.monotonic() - started)
    outputs = np.concatenate(chunks) if chunks else np.zeros((0, model.output_shape[-1]), np.float32)
    return outputs, decoded
