"""Self-supervised pretraining (SimSiam) of EfficientNet-Lite0's top blocks on unlabelled in-domain images.

Why SimSiam: it needs no negatives (SimCLR needs large batches to have enough of them), no
momentum encoder (BYOL and DINO keep a second copy of the network and run it on every view)
and no centring or sharpening schedule (DINO); it works with batches of 32 and is the
cheapest of them per step on a CPU. Its known failure, collapse to a constant output, is
watched: the spread of the normalised projections is logged every epoch, and a run that
collapses stops and keeps the weights of its last healthy epoch.

Why cached: the ImageNet bottom (stem and blocks < ``from_block``) stays frozen, as in
fine-tuning, so each image goes through it once per augmented view
(``fine_tune.cache_activations``, with SSL-strength augmentation) and every epoch trains
only the top (blocks ``from_block``-15 and the head conv, BatchNorm frozen) plus a projector
and a predictor, on pairs of two different cached views of each image. The saved file holds
the whole backbone (bottom unchanged), loadable by ``efficientnet_lite0.build``/``build_split``
and so by ``imgclf train --backbone-weights`` and the retraining config's
``trainer: {backbone_weights: ...}``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf
from pydantic import BaseModel

from models import efficientnet_lite0, openvino_runtime, storage
from models.errors import ImgclfError, InvalidInput
from models.locations import OutputRefused
from models.prediction import utc_now
from models.preprocessing import decode_image
from models.pretrain_config import PretrainConfig
from models.training.fine_tune import cache_activations, freeze_batch_norm

log = logging.getLogger("imgclf.pretrain")

__all__ = ["PretrainCollapsed", "PretrainConfig", "PretrainResult", "decodable", "pretrain", "refuse_existing"]

METHOD = "simsiam"
PROJECTION_DIM = 1024  # projector output (SimSiam: 2048; half is plenty for a few thousand images)
PREDICTOR_HIDDEN = 256  # the predictor's bottleneck, a quarter of the projection as in SimSiam
CACHE_SHARE = 0.4  # with a budget, caching views may take up to this share of it; epochs take the rest
COLLAPSE_STD = 0.1  # spread of normalised projections x sqrt(dim): ~1 healthy, 0 collapsed


class PretrainCollapsed(ImgclfError, RuntimeError):
    """Every epoch collapsed: nothing better than the starting weights to save."""


class PretrainResult(BaseModel):
    output: str
    sidecar: str
    plot: str
    images: int
    skipped: int
    epochs_run: int
    stopped: Literal["epochs", "budget", "collapse"]
    history: dict[str, list[float]]
    seconds: float


def ssl_augmenter(config: PretrainConfig) -> keras.Sequential:
    """Views different enough that matching them teaches something: crop, shift, flip, light, colour."""
    seed = config.seed
    layers = []
    if config.crop:
        layers.append(keras.layers.RandomZoom((-config.crop, 0.0), fill_mode="reflect", seed=seed))
    layers.append(keras.layers.RandomTranslation(0.15, 0.15, fill_mode="reflect", seed=seed))
    if config.flip != "none":
        layers.append(keras.layers.RandomFlip(config.flip, seed=seed))
    layers += [
        keras.layers.RandomContrast(0.4, seed=seed),
        keras.layers.RandomBrightness(0.3, value_range=(0, 255), seed=seed),
        keras.layers.RandomGrayscale(0.2, seed=seed),
    ]
    return keras.Sequential(layers, name="ssl_augment")


def _mlp(hidden: int, out: int, name: str, *, last_bn: bool) -> keras.Sequential:
    layers = [
        keras.layers.Dense(hidden, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Dense(out, use_bias=not last_bn),
    ]
    if last_bn:  # SimSiam's projector ends in BatchNorm without scale and shift
        layers.append(keras.layers.BatchNormalization(center=False, scale=False))
    return keras.Sequential(layers, name=name)


def _negative_cosine(p: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """SimSiam's D(p, z): z is a target, so no gradient flows into it."""
    z = tf.stop_gradient(z)
    return -tf.reduce_mean(tf.reduce_sum(tf.math.l2_normalize(p, 1) * tf.math.l2_normalize(z, 1), axis=1))


def _spread(z: tf.Tensor) -> tf.Tensor:
    """Per-dimension std of the L2-normalised projections, times sqrt(dim): 0 when collapsed."""
    dim = tf.cast(tf.shape(z)[1], tf.float32)
    return tf.reduce_mean(tf.math.reduce_std(tf.math.l2_normalize(z, 1), axis=0)) * tf.sqrt(dim)


def decodable(images: Sequence[bytes]) -> list[int]:
    """Indices of the images TensorFlow decodes (a header can pass the checks and the body still fail)."""
    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(images)), tf.constant(list(images), dtype=tf.string)))
    # a value of the pixels, not a shape: a static shape would let the decoding be optimised away
    ds = ds.map(lambda i, raw: (i, tf.reduce_max(decode_image(raw, 8))), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors()
    return sorted(int(i) for i, _ in ds.as_numpy_iterator())


def _views_within_budget(images: list[bytes], config: PretrainConfig, deadline: float | None) -> int:
    """``config.views``, or fewer (at least 2) when caching them would take more than ``CACHE_SHARE`` of
    the time left: a short probe of this machine (``budget.probe``) prices a view and an epoch."""
    if deadline is None:
        return config.views
    from models.training.budget import probe

    cache, _, step = probe(images, size=config.image_size, passes=len(images)).split(config.from_block)
    per_view, per_epoch = len(images) * cache, 2 * len(images) * step
    left = deadline - time.monotonic()
    views = max(2, min(config.views, int(CACHE_SHARE * left / max(per_view, 1e-9))))
    log.info(
        "time budget: %.1f min left; about %.1f min per cached view, %.1f min per epoch: caching %d views",
        left / 60,
        per_view / 60,
        per_epoch / 60,
        views,
    )
    return views


def refuse_existing(output: str) -> None:
    """A backbone is never overwritten: a model trained from it would no longer match its record."""
    if storage.exists(output):
        raise OutputRefused(f"{output} already exists; pretraining never overwrites a backbone, name another file")


def _write_new(output: str, bottom: keras.Model, top: keras.Model) -> None:
    """The backbone file, into place whole and only if nothing is there (locally a hard link, which never clobbers)."""
    if not storage.is_local(output):
        refuse_existing(output)
        efficientnet_lite0.save_weights(output, bottom, top)
        return
    path = storage.local_path(output)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        efficientnet_lite0.save_weights(tmp, bottom, top)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise OutputRefused(f"{output} appeared while pretraining; the result was not saved") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _plot(history: dict[str, list[float]], output: str, title: str) -> None:
    from models.evaluation import plot_training_curves

    with tempfile.TemporaryDirectory(prefix="imgclf-pretrain-") as tmp:
        local = str(Path(tmp, "loss.png"))
        plot_training_curves({k: history[k] for k in ("loss", "std")}, local, title)
        storage.replace_atomically(output, Path(local).read_bytes())


def pretrain(
    images: list[bytes], config: PretrainConfig, output: str, *, skipped: Sequence[str] = ()
) -> PretrainResult:
    """SimSiam on ``images`` (encoded bytes); saves the backbone to ``output`` (.npz, local or gs://),
    a JSON sidecar ``<output>.json`` and a loss-curve ``<output>.loss.png`` beside it.

    Args:
      skipped: reasons for images the caller could not read, counted in the sidecar.
    """
    started = time.monotonic()
    refuse_existing(output)  # before any work
    keras.utils.set_random_seed(config.seed)
    usable = decodable(images)
    skipped = list(skipped)
    if len(usable) < len(images):
        skipped += [f"image {i}: does not decode" for i in sorted(set(range(len(images))) - set(usable))]
        log.warning("%d of %d images do not decode; skipped", len(images) - len(usable), len(images))
        images = [images[i] for i in usable]
    if len(images) < 2:
        raise InvalidInput(f"pretraining needs at least 2 readable images, got {len(images)}")
    deadline = started + config.budget_seconds if config.budget_seconds is not None else None

    bottom, top = efficientnet_lite0.build_split(config.image_size, config.from_block, "imagenet")
    bottom.trainable = False
    freeze_batch_norm(top)
    views = _views_within_budget(images, config, deadline)
    log.info(
        "pretraining (%s) blocks %d-15 on %d images at %d px, %d views each",
        METHOD,
        config.from_block,
        len(images),
        config.image_size,
        views,
    )
    acts = tf.constant(
        cache_activations(
            openvino_runtime.frozen(bottom, len(images)),
            images,
            image_size=config.image_size,
            views=views,
            augment=ssl_augmenter(config),
        )
    )
    cache_seconds = time.monotonic() - started
    history, stopped = _train(top, acts, config, deadline)
    del acts
    if not history["loss"]:
        raise PretrainCollapsed("SimSiam collapsed in its first epoch; try a lower learning_rate or more views")

    _write_new(output, bottom, top)
    sidecar, plot = f"{output}.json", f"{output}.loss.png"
    _plot(history, plot, f"{METHOD} on {len(images)} images")
    seconds = round(time.monotonic() - started, 1)
    record = {
        "method": METHOD,
        "base_weights": "imagenet",
        "created_at": utc_now(),
        "config": config.model_dump(mode="json"),
        "views_cached": views,
        "images": len(images),
        "skipped": len(skipped),
        "skipped_examples": skipped[:20],
        "epochs_run": len(history["loss"]),
        "stopped": stopped,
        "history": history,
        "trained_parameters": int(sum(np.prod(w.shape) for w in top.trainable_weights)),
        "seconds": {"cache": round(cache_seconds, 1), "total": seconds},
        "use": {"train": f"--backbone-weights {output}", "retraining": {"trainer": {"backbone_weights": output}}},
    }
    storage.replace_atomically(sidecar, json.dumps(record, indent=2).encode())
    log.info("saved the pretrained backbone to %s in %.0fs (%s)", output, seconds, stopped)
    return PretrainResult(
        output=output,
        sidecar=sidecar,
        plot=plot,
        images=len(images),
        skipped=len(skipped),
        epochs_run=len(history["loss"]),
        stopped=stopped,
        history=history,
        seconds=seconds,
    )


def _train(
    top: keras.Model, acts: tf.Tensor, config: PretrainConfig, deadline: float | None
) -> tuple[dict[str, list[float]], str]:
    """SimSiam epochs on pairs of cached views; returns the healthy epochs' history and why it stopped.

    ``top`` ends with the weights of the last healthy epoch (a collapsed or non-finite one is undone).
    """
    count, views = int(acts.shape[0]), int(acts.shape[1])
    batch = min(config.batch_size, count)
    steps = count // batch
    projector = _mlp(PROJECTION_DIM, PROJECTION_DIM, "projector", last_bn=True)
    predictor = _mlp(PREDICTOR_HIDDEN, PROJECTION_DIM, "predictor", last_bn=False)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, steps * (config.epochs - 1)),
        warmup_target=config.learning_rate,
        warmup_steps=steps,
    )
    top_optimizer = keras.optimizers.Adam(schedule)
    head_optimizer = keras.optimizers.Adam(config.head_learning_rate)
    projector.build((None, efficientnet_lite0.FEATURE_DIM))
    predictor.build((None, PROJECTION_DIM))
    tops, heads = top.trainable_variables, projector.trainable_variables + predictor.trainable_variables
    top_optimizer.build(tops)  # every variable exists before tracing
    head_optimizer.build(heads)
    seed = config.seed

    def pairs(index: tf.Tensor):
        first = tf.random.uniform(tf.shape(index), 0, views, tf.int32, seed=seed)
        second = (first + tf.random.uniform(tf.shape(index), 1, views, tf.int32, seed=seed + 1)) % views
        take = lambda v: tf.cast(tf.gather_nd(acts, tf.stack([index, v], axis=1)), tf.float32)  # noqa: E731
        return take(first), take(second)

    data = (
        tf.data.Dataset.range(count)
        .map(lambda i: tf.cast(i, tf.int32))
        .shuffle(count, seed=seed, reshuffle_each_iteration=True)
        .batch(batch, drop_remainder=True)
        .map(pairs, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
    )

    @tf.function(reduce_retracing=True)
    def step(x1, x2):
        with tf.GradientTape() as tape:
            features = top(tf.concat([x1, x2], 0), training=True)  # BatchNorm frozen: one call for both views
            f1, f2 = tf.split(features, 2)
            z1, z2 = projector(f1, training=True), projector(f2, training=True)
            p1, p2 = predictor(z1, training=True), predictor(z2, training=True)
            loss = 0.5 * (_negative_cosine(p1, z2) + _negative_cosine(p2, z1))
        grads = tape.gradient(loss, tops + heads)
        top_optimizer.apply_gradients(zip(grads[: len(tops)], tops, strict=True))
        head_optimizer.apply_gradients(zip(grads[len(tops) :], heads, strict=True))
        return loss, 0.5 * (_spread(z1) + _spread(z2))

    history: dict[str, list[float]] = {"loss": [], "std": [], "seconds": []}
    healthy = top.get_weights()
    started = time.monotonic()
    stopped = "epochs"
    for epoch in range(config.epochs):
        epoch_started = time.monotonic()
        losses, spreads = [], []
        for x1, x2 in data:
            loss, spread = step(x1, x2)
            losses.append(float(loss))
            spreads.append(float(spread))
        loss, spread = float(np.mean(losses)), float(np.mean(spreads))
        log.info(
            "pretrain epoch %d/%d  loss %.4f  std %.3f  (%.0fs)",
            epoch + 1,
            config.epochs,
            loss,
            spread,
            time.monotonic() - started,
        )
        if not math.isfinite(loss) or spread < COLLAPSE_STD:
            log.warning(
                "pretrain epoch %d collapsed (loss %.4f, std %.3f below %.2f): keeping the weights of epoch %d",
                epoch + 1,
                loss,
                spread,
                COLLAPSE_STD,
                epoch,
            )
            top.set_weights(healthy)
            stopped = "collapse"
            break
        healthy = top.get_weights()
        history["loss"].append(loss)
        history["std"].append(spread)
        history["seconds"].append(round(time.monotonic() - epoch_started, 1))
        if deadline is not None and time.monotonic() >= deadline and epoch + 1 < config.epochs:
            log.warning("pretrain: out of time budget after epoch %d; stopping with the weights so far", epoch + 1)
            stopped = "budget"
            break
    return history, stopped
