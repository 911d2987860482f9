"""Train a classifier on a manifest or image folder and register it as a new version.

``fit`` trains and exports a candidate; ``train`` (the ``imgclf train`` command) also
registers it. Transfer learning in two phases: the frozen backbone's features are computed once and
a head is fitted on them (fast on a CPU); then, optionally, the top backbone blocks are
fine-tuned end to end on augmented images. Thresholds are chosen on the validation
split and metrics measured on the test split, with the same decision rules serving uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from pydantic import BaseModel

from models import efficientnet_lite0, evaluation
from models.backbones import build_backbone
from models.export import export_saved_model
from models.image_checks import check_image, read_image
from models.label_spec import LabelSpec, Task, infer_task
from models.manifest import Example, ManifestError, check_labels, examples_from_folder, read_manifest
from models.prediction import ErrorCode, ImageError
from models.preprocessing import decode_image, decode_images
from models.registry import ModelCard, ModelRegistry, RegistryError, check_name
from models.train_config import AugmentationConfig, TrainConfig
from models.tuning import TunerConfig, tune_head

log = logging.getLogger("imgclf.train")


class TrainResult(BaseModel):
    card: ModelCard
    aliases_set: list[str]
    skipped_rows: list[str]


# ---------------------------------------------------------------- data


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
            bad.append(_bad_row(example, e))
            continue
        kept.append(example)
        data.append(raw)
        if i % 500 == 0 or i == len(examples):
            log.info("read %d/%d images (%.0f img/s)", i, len(examples), i / (time.monotonic() - started))
    _refuse_or_skip(bad, len(examples), config)
    return kept, data, bad


def _bad_row(example: Example, error: ImageError) -> str:
    return f"row {example.row} ({example.image_uri}): {error}"


def _refuse_or_skip(bad: list[str], total: int, config: TrainConfig) -> None:
    if bad and not config.skip_bad_rows:
        raise ManifestError(
            f"{len(bad)} of {total} images cannot be used:\n  "
            + "\n  ".join(bad[:20])
            + ("\n  ..." if len(bad) > 20 else "")
            + "\nFix or remove these rows, or pass --skip-bad-rows to train without them."
        )
    for line in bad:
        log.warning("skipping %s", line)


def _decode_error(raw: bytes, image_size: int) -> ImageError:
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


def run_on_images(
    model: keras.Model, data: Sequence[bytes], image_size: int, what: str
) -> tuple[np.ndarray, list[int]]:
    """``model``'s outputs for encoded images, and the indices of the images that decoded.

    Each image is decoded once, here; one that fails is left out (its index missing)
    rather than failing the whole batch.
    """
    if not data:
        return np.zeros((0, model.output_shape[-1]), np.float32), []
    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(data)), tf.constant(list(data), dtype=tf.string)))
        .map(lambda i, raw: (i, decode_image(raw, image_size)), num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(64)
        .prefetch(tf.data.AUTOTUNE)
    )
    chunks, decoded, started = [], [], time.monotonic()
    for indices, images in dataset:
        chunks.append(np.asarray(model.predict_on_batch(images)))
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


# ---------------------------------------------------------------- model


def build_head(spec: LabelSpec, feature_dim: int, dropout: float) -> keras.Model:
    units, activation = {
        Task.BINARY: (1, "sigmoid"),
        Task.MULTICLASS: (len(spec.labels), "softmax"),
        Task.MULTILABEL: (len(spec.labels), "sigmoid"),
    }[spec.task]
    inputs = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inputs)
    outputs = keras.layers.Dense(units, activation=activation, name="head_dense")(x)
    return keras.Model(inputs, outputs, name="head")


def _exact_match(y_true, y_pred):
    """Per image, 1.0 if every label's decision at 0.5 is right: exact match, for the training curves."""
    right = keras.ops.equal(y_true > 0.5, y_pred >= 0.5)
    return keras.ops.cast(keras.ops.all(right, axis=-1), "float32")


def _compile(model: keras.Model, spec: LabelSpec, learning_rate: float) -> None:
    """Multilabel curves show exact match beside per-label accuracy, named so, not Keras's ``binary_accuracy``."""
    if spec.task is Task.MULTICLASS:
        loss, metrics = "sparse_categorical_crossentropy", [keras.metrics.get("sparse_categorical_accuracy")]
    elif spec.task is Task.MULTILABEL:
        loss, metrics = (
            "binary_crossentropy",
            [
                keras.metrics.MeanMetricWrapper(_exact_match, name="exact_match"),
                keras.metrics.BinaryAccuracy(name="per_label_accuracy"),
            ],
        )
    else:
        loss, metrics = "binary_crossentropy", [keras.metrics.get("binary_accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)


def _targets(spec: LabelSpec, examples: Sequence[Example]) -> np.ndarray:
    y = spec.encode([e.labels for e in examples])
    return y.astype(np.float32)[:, None] if spec.task is Task.BINARY else y


def _full_probabilities(spec: LabelSpec, raw: np.ndarray) -> np.ndarray:
    """Head outputs to one probability per label, as the exported signature returns them."""
    return np.concatenate([1 - raw, raw], axis=1) if spec.task is Task.BINARY else raw


class _EpochLog(keras.callbacks.Callback):
    def __init__(self, phase: str, epochs: int):
        super().__init__()
        self.phase, self.epochs, self.started = phase, epochs, time.monotonic()
        self.rates: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        shown = "  ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        log.info(
            "%s epoch %d/%d  %s  (%.0fs)", self.phase, epoch + 1, self.epochs, shown, time.monotonic() - self.started
        )


def class_weights(spec: LabelSpec, examples: Sequence[Example], mode: str) -> dict[int, float] | None:
    """Inverse-frequency weights for single-label tasks, so a rare class counts as much in the loss."""
    if mode == "none" or spec.task is Task.MULTILABEL:
        return None
    counts = np.bincount(spec.encode([e.labels for e in examples]), minlength=len(spec.labels))
    return {i: float(len(examples) / (len(spec.labels) * n)) for i, n in enumerate(counts) if n}


def _compiled_head(spec: LabelSpec, feature_dim: int, dropout: float, learning_rate: float) -> keras.Model:
    head = build_head(spec, feature_dim, dropout)
    _compile(head, spec, learning_rate)
    return head


def _fit(
    model,
    spec,
    train,
    validation,
    epochs,
    learning_rate,
    patience,
    phase,
    weights=None,
    checkpoint=None,
    batch_size=None,
    cosine_steps: int | None = None,
) -> dict[str, list[float]]:
    """Fits with early stopping on the validation loss; or, given ``cosine_steps``, with a
    learning rate decaying to zero over that many steps, keeping the last weights."""
    if cosine_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, cosine_steps)
    _compile(model, spec, learning_rate)
    monitor = "val_loss" if validation is not None else "loss"
    epoch_log = _EpochLog(phase, epochs)
    callbacks = [epoch_log]
    if not cosine_steps:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
    if checkpoint:  # the weights survive a crash of a long fine-tuning run
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                checkpoint, monitor=monitor, save_best_only=not cosine_steps, save_weights_only=True
            )
        )
    shuffle = not isinstance(train[0], tf.data.Dataset)  # a dataset shuffles itself
    history = model.fit(
        *train,
        validation_data=validation,
        epochs=epochs,
        verbose=0,
        callbacks=callbacks,
        shuffle=shuffle,
        class_weight=weights,
        batch_size=None if isinstance(train[0], tf.data.Dataset) else batch_size,
    )
    return {**{k: [float(v) for v in vs] for k, vs in history.history.items()}, "learning_rate": epoch_log.rates}


def augmenter(config: AugmentationConfig, seed: int) -> keras.Sequential:
    layers = []
    if config.flip != "none":
        layers.append(keras.layers.RandomFlip(config.flip, seed=seed))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation, fill_mode="reflect", seed=seed))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="reflect", seed=seed))
    if config.contrast:
        layers.append(keras.layers.RandomContrast(config.contrast, seed=seed))
    if config.brightness:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0, 255), seed=seed))
    if config.transpose:
        layers.append(RandomTranspose(seed=seed))
    return keras.Sequential(layers, name="augment")


def _fine_tune(
    backbone, head, spec, config, image_size, examples, data, out_dir
) -> tuple[keras.Model, dict[str, list[float]]]:
    backbone.trainable = True  # a frozen parent hides every child's weights from the optimizer
    for layer in backbone.layers:
        index = efficientnet_lite0.block_index(layer.name)
        trainable = index is None or index >= config.fine_tune_from_block
        # BatchNorm stays frozen: small fine-tuning batches would wreck its statistics.
        layer.trainable = trainable and not isinstance(layer, keras.layers.BatchNormalization)
    if config.backbone == "efficientnet_lite0":
        for layer in backbone.layers:
            if layer.name.startswith(("conv_stem", "bn0")):
                layer.trainable = False
    classifier = keras.Sequential([backbone, head], name="classifier")
    augment = augmenter(config.augmentation, config.seed)

    def dataset(split: str, training: bool) -> tf.data.Dataset | None:
        idx = [i for i, e in enumerate(examples) if e.split == split]
        if not idx:
            return None
        images = tf.data.Dataset.from_tensor_slices(tf.constant([data[i] for i in idx], dtype=tf.string))
        labels = tf.data.Dataset.from_tensor_slices(_targets(spec, [examples[i] for i in idx]))
        ds = tf.data.Dataset.zip((images, labels))
        if training:
            ds = ds.shuffle(len(idx), seed=config.seed, reshuffle_each_iteration=True)
        ds = ds.batch(config.batch_size).map(
            lambda b, y: (decode_images(b, image_size), y), num_parallel_calls=tf.data.AUTOTUNE
        )
        if training:
            ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    history = _fit(
        classifier,
        spec,
        (dataset("train", True),),
        dataset("validation", False),
        config.fine_tune_epochs,
        config.fine_tune_learning_rate,
        config.patience,
        "fine-tune",
        class_weights(spec, [e for e in examples if e.split == "train"], config.class_weights),
        str(Path(out_dir, "checkpoints", "fine_tune.weights.h5")),
        cosine_steps=_cosine_steps(config, sum(e.split == "train" for e in examples)),
    )
    return classifier, history


def _cosine_steps(config: TrainConfig, train_count: int) -> int | None:
    if config.fine_tune_schedule != "cosine":
        return None
    return config.fine_tune_epochs * -(-train_count // config.batch_size)


class RandomTranspose(keras.layers.Layer):
    """Swaps height and width of half the images: with RandomFlip, the 8 symmetries of a square."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def call(self, x, training=True):
        if not training:
            return x
        swap = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], seed=self.seed) < 0.5
        return tf.where(swap, tf.transpose(x, [0, 2, 1, 3]), x)


class TTA(keras.Model):
    """Test-time augmentation: the mean prediction over flips (4 views) or all square symmetries (8)."""

    def __init__(self, inner: keras.Model, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.inner, self.mode = inner, mode

    def call(self, x, training=False):
        views = [x, keras.ops.flip(x, 2), keras.ops.flip(x, 1), keras.ops.flip(keras.ops.flip(x, 1), 2)]
        if self.mode == "dihedral":
            views += [keras.ops.transpose(v, (0, 2, 1, 3)) for v in views]
        return keras.ops.mean(keras.ops.stack([self.inner(v, training=training) for v in views]), axis=0)


def _fine_tune_cached(
    head, spec, config, image_size, examples, data, out_dir
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fine-tunes EfficientNet's top blocks on cached bottom activations of augmented views.

    Each training image is augmented ``fine_tune_views`` times (the first view is the
    original) and pushed once through the frozen bottom; every epoch then shows the top
    one random view per image. The bottom is what costs most on a CPU, so this is
    several times faster than end-to-end fine-tuning with the same augmentation.
    """
    bottom, top = efficientnet_lite0.build_split(image_size, config.fine_tune_from_block)
    bottom.trainable = False
    for layer in top.layers:  # BatchNorm stays frozen, as in end-to-end fine-tuning
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    augment = augmenter(config.augmentation, config.seed)
    views = config.fine_tune_views

    def activations(indices: list[int], n_views: int) -> np.ndarray:
        out = []
        started = time.monotonic()
        for v in range(n_views):
            images = tf.data.Dataset.from_tensor_slices(tf.constant([data[i] for i in indices], dtype=tf.string))
            images = images.batch(64).map(lambda b: decode_images(b, image_size), num_parallel_calls=tf.data.AUTOTUNE)
            if v:
                images = images.map(lambda x: augment(x, training=True), num_parallel_calls=tf.data.AUTOTUNE)
            out.append(np.concatenate([bottom.predict_on_batch(x).astype(np.float16) for x in images]))
            log.info("cached bottom activations: view %d/%d (%.0fs)", v + 1, n_views, time.monotonic() - started)
        return np.stack(out, axis=1)  # [images, views, h, w, c]

    train_idx = [i for i, e in enumerate(examples) if e.split == "train"]
    val_idx = [i for i, e in enumerate(examples) if e.split == "validation"]
    train_acts = tf.constant(activations(train_idx, views))
    y_train = _targets(spec, [examples[i] for i in train_idx])

    def train_data(seed: int) -> tf.data.Dataset:
        return (
            tf.data.Dataset.range(len(train_idx))
            .shuffle(len(train_idx), seed=seed, reshuffle_each_iteration=True)
            .map(
                lambda i: (
                    tf.cast(train_acts[i, tf.random.uniform([], 0, views, tf.int64, seed=seed)], tf.float32),
                    tf.gather(y_train, i),
                )
            )
            .batch(config.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )

    validation = None
    if val_idx:
        val_acts = activations(val_idx, 1)[:, 0].astype(np.float32)
        validation = (val_acts, _targets(spec, [examples[i] for i in val_idx]))
    members, history, head_weights = [], {}, head.get_weights()
    for m in range(config.ensemble):
        if m:  # a fresh top from the ImageNet weights and a copy of the trained head; its own shuffles and views
            keras.utils.set_random_seed(config.seed + m)
            top = efficientnet_lite0.build_split(image_size, config.fine_tune_from_block)[1]
            for layer in top.layers:
                layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
            member_head = keras.models.clone_model(head)
            member_head.set_weights(head_weights)
        member = keras.Sequential([top, head if m == 0 else member_head], name=f"top_and_head_{m}")
        member_history = _fit(
            member,
            spec,
            (train_data(config.seed + m),),
            validation,
            config.fine_tune_epochs,
            config.fine_tune_learning_rate,
            config.patience,
            "fine-tune" if config.ensemble == 1 else f"fine-tune {m + 1}/{config.ensemble}",
            class_weights(spec, [examples[i] for i in train_idx], config.class_weights),
            str(Path(out_dir, "checkpoints", f"fine_tune_{m}.weights.h5")),
            cosine_steps=_cosine_steps(config, len(train_idx)),
        )
        members.append(member)
        for key, values in member_history.items():
            history.setdefault(key, []).extend(values)
    inputs = keras.Input(bottom.input_shape[1:], name="image")
    features = bottom(inputs)
    outputs = [member(features) for member in members]
    output = keras.layers.Average(name="ensemble_mean")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, output, name="classifier"), history


# ---------------------------------------------------------------- the whole run


class Candidate(BaseModel):
    """A trained, exported model not yet in the registry: what the Pusher registers if blessed."""

    card: ModelCard
    saved_model_dir: str
    files: dict[str, str]
    skipped_rows: list[str]
    tuning: dict[str, Any] | None = None


def fit(
    config: TrainConfig,
    spec: LabelSpec,
    examples: list[Example],
    data: list[bytes],
    out_dir: str,
    parent_version: int | None = None,
    skipped: Sequence[str] = (),
    tuner: TunerConfig | None = None,
) -> Candidate:
    """Trains on in-memory images, evaluates on their splits, and exports to ``out_dir``."""
    keras.utils.set_random_seed(config.seed)
    started = time.monotonic()
    skipped = list(skipped)
    backbone, image_size = build_backbone(config.backbone, config.image_size)
    backbone.trainable = False
    features, decoded = run_on_images(backbone, data, image_size, "backbone features")
    if len(decoded) < len(data):
        undecodable = sorted(set(range(len(data))) - set(decoded))
        failed = [_bad_row(examples[i], _decode_error(data[i], image_size)) for i in undecodable]
        _refuse_or_skip(failed, len(examples) + len(skipped), config)
        skipped += failed
        examples, data = [examples[i] for i in decoded], [data[i] for i in decoded]
    by_split = {s: [i for i, e in enumerate(examples) if e.split == s] for s in ("train", "validation", "test")}
    log.info("splits: %s", {s: len(i) for s, i in by_split.items()})
    if not by_split["train"]:
        raise ManifestError("the train split is empty; add a split column or more rows")
    missing = set(spec.labels) - {label for i in by_split["train"] for label in examples[i].labels}
    if missing and spec.task is not Task.MULTILABEL:
        raise ManifestError(f"labels {sorted(missing)} have no training example; add some or drop the label")

    pick = lambda split: [examples[i] for i in by_split[split]]  # noqa: E731
    head = build_head(spec, features.shape[1], config.dropout)
    train_xy = (features[by_split["train"]], _targets(spec, pick("train")))
    val_xy = (features[by_split["validation"]], _targets(spec, pick("validation"))) if by_split["validation"] else None
    weights = class_weights(spec, pick("train"), config.class_weights)
    tuning = None
    if tuner is not None and tuner.enabled:
        if val_xy is None:
            log.warning("tuner skipped: it needs a validation split")
        else:
            tuning = tune_head(
                lambda dropout, lr: _compiled_head(spec, features.shape[1], dropout, lr),
                train_xy,
                val_xy,
                config.epochs,
                config.patience,
                tuner,
                str(Path(out_dir, "tuning")),
                weights,
            )
            config = config.model_copy(update=tuning["best"])
            head = build_head(spec, features.shape[1], config.dropout)
    history = _fit(
        head,
        spec,
        train_xy,
        val_xy,
        config.epochs,
        config.learning_rate,
        config.patience,
        "head",
        weights,
        batch_size=config.batch_size,
    )

    tuned_parameters = 0
    fine_history: dict[str, list[float]] = {}
    if config.fine_tune_epochs:
        if config.backbone == "efficientnet_lite0" and config.fine_tune_views:
            classifier, fine_history = _fine_tune_cached(head, spec, config, image_size, examples, data, out_dir)
            tuned_parameters = sum(int(np.prod(w.shape)) for w in classifier.trainable_weights)
        else:
            classifier, fine_history = _fine_tune(backbone, head, spec, config, image_size, examples, data, out_dir)
            tuned_parameters = sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)
        for key, values in fine_history.items():
            history.setdefault(key, []).extend(values)
    else:
        classifier = keras.Sequential([backbone, head], name="classifier")
    if config.tta != "none":
        classifier = TTA(classifier, config.tta, name=f"{config.tta}_tta")
    if config.fine_tune_epochs or config.tta != "none":
        raw = {
            s: run_on_images(classifier, [data[i] for i in by_split[s]], image_size, f"{s} predictions")[0]
            for s in ("validation", "test")
        }
    else:  # the classifier is the frozen backbone plus the head: reuse the features
        raw = {
            s: head.predict(features[by_split[s]], verbose=0) if by_split[s] else np.zeros((0, head.output_shape[-1]))
            for s in ("validation", "test")
        }
    probabilities = {s: _full_probabilities(spec, p) for s, p in raw.items()}

    truth = {s: [e.labels for e in pick(s)] for s in ("validation", "test")}
    spec = spec.model_copy(
        update={"thresholds": evaluation.choose_thresholds(spec, probabilities["validation"], truth["validation"])}
    )
    metrics = {s: evaluation.evaluate(spec, probabilities[s], truth[s]) for s in ("validation", "test")}
    _log_metrics(spec, metrics)

    files = _write_report(Path(out_dir, "report"), spec, metrics, history, config.model_name)
    saved_model_dir = str(Path(out_dir, "saved_model"))
    export_saved_model(classifier, spec, image_size, saved_model_dir)
    card = ModelCard(
        name=config.model_name,
        label_spec=spec,
        image_size=image_size,
        backbone=config.backbone,
        metrics=metrics,
        data_fingerprint=fingerprint(examples, data),
        parent_version=parent_version,
        training={
            **config.model_dump(mode="json", exclude={"model_name", "promote"}),
            "counts": {s: len(i) for s, i in by_split.items()},
            "skipped_rows": len(skipped),
            "epochs_run": len(history.get("loss", [])),
            "fine_tune_epochs_run": len(fine_history.get("loss", [])) if config.fine_tune_epochs else 0,
            "fine_tuned_backbone_parameters": tuned_parameters,
            "history": history,
            "seconds": round(time.monotonic() - started, 1),
        },
    )
    return Candidate(card=card, saved_model_dir=saved_model_dir, files=files, skipped_rows=skipped, tuning=tuning)


def train(config: TrainConfig, registry: ModelRegistry) -> TrainResult:
    """``imgclf train``: reads a manifest, fits, registers; aliases as the module docstring says."""
    check_name(config.model_name)
    started = time.monotonic()
    production = registry.alias(config.model_name, "production")
    parent = registry.card(config.model_name, production) if production is not None else None
    examples = load_examples(config)
    spec = resolve_label_spec(examples, config, parent)
    log.info("task %s, labels %s, %d examples", spec.task.value, spec.labels, len(examples))
    examples, data, skipped = load_images(examples, config)
    with tempfile.TemporaryDirectory(prefix="imgclf-train-") as tmp:
        candidate = fit(config, spec, examples, data, tmp, production, skipped)
        version = registry.register(candidate.card, candidate.saved_model_dir, candidate.files)
    card = registry.card(config.model_name, version)
    aliases = ["production"] if production is None or config.promote else ["candidate"]
    for alias in aliases:
        registry.set_alias(config.model_name, alias, version)
    log.info(
        "registered %s version %d under %s (alias %s) in %.0fs",
        config.model_name,
        version,
        registry.root,
        ", ".join(aliases),
        time.monotonic() - started,
    )
    return TrainResult(card=card, aliases_set=aliases, skipped_rows=candidate.skipped_rows)


def _log_metrics(spec: LabelSpec, metrics: dict[str, dict[str, Any]]) -> None:
    for split, m in metrics.items():
        if m.get("count"):
            log.info("%s: %d images, %s, macro-F1 %.4f", split, m["count"], evaluation.accuracy_text(m), m["macro_f1"])
    if spec.thresholds:
        log.info("thresholds chosen on validation: %s", spec.thresholds)


def _write_report(folder: Path, spec: LabelSpec, metrics, history, name: str) -> dict[str, str]:
    """metrics.json plus pictures, stored beside the version as report/*."""
    folder.mkdir(parents=True)
    files = {"report/metrics.json": folder / "metrics.json"}
    files["report/metrics.json"].write_text(json.dumps(metrics, indent=2))
    if history:
        files["report/training_curves.png"] = folder / "training_curves.png"
        evaluation.plot_training_curves(history, str(files["report/training_curves.png"]), f"{name}: training")
    split = "test" if metrics["test"].get("count") else "validation"
    if "confusion_matrix" in metrics[split]:
        files["report/confusion_matrix.png"] = folder / "confusion_matrix.png"
        evaluation.plot_confusion_matrix(
            spec,
            metrics[split]["confusion_matrix"],
            str(files["report/confusion_matrix.png"]),
            f"{name}: {split} split",
        )
    return {k: str(v) for k, v in files.items()}


__all__ = ["TrainConfig", "TrainResult", "train", "RegistryError"]
