"""Synthetic training images for rare classes from a small conditional GAN (``trainer.synthetic: {label: count}``).

A DCGAN-class generator and a projection discriminator, both conditioned on the label, are
trained on the training split only, at a resolution two CPU cores can train in minutes
(64 px by default); DiffAugment (the same random translation, cutout and brightness on real
and fake images before the discriminator, Zhao et al. 2020) keeps the discriminator from
memorising a few hundred images. The requested number of images per label is then drawn
and added to the training split as ``synthetic:<label>/<n>.png`` examples: never to
validation or test, and never into the data fingerprint. A grid of samples per label goes
in the version's report. Single-label tasks only: a label set has no single condition.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from models.label_spec import Task
from models.manifest import Example, ManifestError
from models.preprocessing import decode_images
from models.train_config import SynthesisConfig
from models.training.data import TrainingData

log = logging.getLogger("imgclf.train")

SYNTHETIC = "synthetic:"
LATENT = 128


def is_synthetic(example: Example) -> bool:
    return example.image_uri.startswith(SYNTHETIC)


@dataclass
class Synthesis:
    data: TrainingData
    counts: dict[str, int]
    steps: int
    seconds: float
    losses: dict[str, list[float]]
    grid_png: bytes

    def summary(self) -> dict:
        """What the model card records."""
        return {"counts": self.counts, "steps": self.steps, "seconds": self.seconds, "losses": self.losses}


def _generator(classes: int, size: int, channels: int) -> keras.Model:
    z = keras.Input((LATENT,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    embedded = keras.layers.Embedding(classes, LATENT)(label)
    x = keras.layers.Concatenate()([z, embedded])
    x = keras.layers.Dense(4 * 4 * 128, use_bias=False)(x)
    x = keras.layers.Reshape((4, 4, 128))(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    filters = 96
    while x.shape[1] < size // 2:
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
        filters = max(filters // 2, 16)
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="tanh")(x)
    return keras.Model([z, label], x, name="generator")


def _discriminator(classes: int, size: int, channels: int) -> keras.Model:
    """A projection discriminator: the label's embedding dotted with the image features, plus an unconditional score."""
    image = keras.Input((size, size, channels), name="image")
    label = keras.Input((), dtype="int32", name="label")
    x, filters = image, 16
    while x.shape[1] > 4:
        x = keras.layers.SpectralNormalization(keras.layers.Conv2D(filters, 4, strides=2, padding="same"))(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        filters = min(filters * 2, 128)
    h = keras.layers.GlobalAveragePooling2D()(x)
    score = keras.layers.Dense(1)(h)
    projection = keras.layers.Dot(axes=1)([keras.layers.Embedding(classes, h.shape[-1])(label), h])
    return keras.Model([image, label], keras.layers.Add()([score, projection]), name="discriminator")


def diff_augment(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Differentiable translation (1/8 of the side), cutout (half the side) and brightness, per image."""
    n, size = tf.shape(x)[0], tf.shape(x)[1]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    x = x + tf.random.stateless_uniform([n, 1, 1, 1], seeds[0], -0.25, 0.25)
    shift = size // 8
    padded = tf.pad(x, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
    offsets = tf.random.stateless_uniform([n, 2], seeds[1], 0, 2 * shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(size)[None, :]  # [n, size]: the rows each image keeps
    cols = offsets[:, 1:] + tf.range(size)[None, :]
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    x = tf.gather(x, cols, axis=2, batch_dims=1)
    centre = tf.random.stateless_uniform([n, 2], seeds[2], 0, size, dtype=tf.int32)
    grid = tf.range(size)
    inside_r = tf.abs(grid[None, :] - centre[:, :1]) < size // 4
    inside_c = tf.abs(grid[None, :] - centre[:, 1:]) < size // 4
    mask = 1.0 - tf.cast(inside_r[:, :, None] & inside_c[:, None, :], x.dtype)
    return x * mask[..., None]


def _real_images(data: TrainingData, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Training images at ``size`` in [-1, 1], their label indices, and 1 channel when every image is grey."""
    images = np.concatenate(
        [
            decode_images(tf.constant(data.images("train")[i : i + 64]), size).numpy()
            for i in range(0, len(data.by_split["train"]), 64)
        ]
    )
    grey = bool(np.abs(images - images.mean(axis=-1, keepdims=True)).max() < 1.0)
    if grey:
        images = images[..., :1]
    labels = np.array([data.spec.labels.index(e.labels[0]) for e in data.split("train")], np.int32)
    return (images / 127.5 - 1).astype(np.float32), labels, 1 if grey else 3


def _png(image: np.ndarray) -> bytes:
    pixels = ((image + 1) * 127.5).clip(0, 255).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(out, format="PNG")
    return out.getvalue()


def check_request(counts: dict[str, int], data: TrainingData) -> None:
    if data.spec.task is Task.MULTILABEL:
        raise ManifestError("synthetic images need a single-label task (binary or multiclass), not multilabel")
    unknown = [label for label in counts if label not in data.spec.labels]
    if unknown:
        raise ManifestError(f"synthetic: unknown labels {unknown}; the labels are {data.spec.labels}")


def synthesise(data: TrainingData, config: SynthesisConfig, counts: dict[str, int], seed: int) -> Synthesis:
    """Trains the GAN on the training split and returns the data with the synthetic images added to it."""
    check_request(counts, data)
    started = time.monotonic()
    keras.utils.set_random_seed(seed)
    real, labels, channels = _real_images(data, config.image_size)
    classes = len(data.spec.labels)
    generator, discriminator = (
        _generator(classes, config.image_size, channels),
        _discriminator(classes, config.image_size, channels),
    )
    g_opt = keras.optimizers.Adam(config.learning_rate, beta_1=0.0, beta_2=0.99)
    d_opt = keras.optimizers.Adam(config.learning_rate, beta_1=0.0, beta_2=0.99)
    softplus = tf.nn.softplus

    @tf.function
    def step(x, y, step_seed):
        seeds = tf.random.experimental.stateless_split(step_seed, 4)
        z = tf.random.stateless_normal([tf.shape(x)[0], LATENT], seeds[0])
        with tf.GradientTape() as d_tape:
            fake = generator([z, y], training=True)
            real_score = discriminator([diff_augment(x, seeds[1]), y], training=True)
            fake_score = discriminator([diff_augment(fake, seeds[2]), y], training=True)
            d_loss = tf.reduce_mean(softplus(-real_score)) + tf.reduce_mean(softplus(fake_score))
        d_opt.apply_gradients(
            zip(
                d_tape.gradient(d_loss, discriminator.trainable_variables),
                discriminator.trainable_variables,
                strict=True,
            )
        )
        with tf.GradientTape() as g_tape:
            fake = generator([z, y], training=True)
            g_loss = tf.reduce_mean(softplus(-discriminator([diff_augment(fake, seeds[3]), y], training=True)))
        g_opt.apply_gradients(
            zip(g_tape.gradient(g_loss, generator.trainable_variables), generator.trainable_variables, strict=True)
        )
        return d_loss, g_loss

    rng = np.random.default_rng(seed)
    deadline = started + config.budget_seconds
    losses: dict[str, list[float]] = {"discriminator": [], "generator": []}
    batch = min(config.batch_size, len(real))
    steps = 0
    while steps < config.steps and time.monotonic() < deadline:
        pick = rng.integers(0, len(real), batch)
        d_loss, g_loss = step(real[pick], labels[pick], tf.constant([seed, steps], tf.int64))
        steps += 1
        if steps % 100 == 0 or steps == config.steps:
            losses["discriminator"].append(float(d_loss))
            losses["generator"].append(float(g_loss))
            log.info(
                "GAN step %d/%d  discriminator %.3f  generator %.3f  (%.0fs)",
                steps,
                config.steps,
                float(d_loss),
                float(g_loss),
                time.monotonic() - started,
            )
    if steps < config.steps:
        log.warning("GAN stopped at its time budget after %d of %d steps", steps, config.steps)

    def draw(label: str, n: int) -> np.ndarray:
        z = tf.random.stateless_normal([n, LATENT], [seed, 10_000 + data.spec.labels.index(label)])
        return generator.predict_on_batch([z, np.full(n, data.spec.labels.index(label), np.int32)])

    examples, images = list(data.examples), list(data.data)
    for label, n in counts.items():
        for i, image in enumerate(draw(label, n) if n else []):
            examples.append(Example(f"{SYNTHETIC}{label}/{i}.png", (label,), "train", 0))
            images.append(_png(image))
    grid = np.concatenate([np.concatenate(list(draw(label, 8)), axis=1) for label in data.spec.labels], axis=0)
    log.info("synthetic images: %s from %d GAN steps in %.0fs", counts, steps, time.monotonic() - started)
    return Synthesis(
        data=TrainingData(data.spec, examples, images, data.skipped),
        counts=dict(counts),
        steps=steps,
        seconds=round(time.monotonic() - started, 1),
        losses=losses,
        grid_png=_png(grid),
    )
