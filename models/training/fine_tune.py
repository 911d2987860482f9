"""Fine-tuning the backbone's top blocks: end to end on augmented images, or on cached bottom activations.

The cached way is the one that pays on a CPU: the frozen bottom (stem and early blocks) is
what costs most, so each training image is pushed through it once per augmented view and
every epoch then trains only the top on one random cached view per image.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models import efficientnet_lite0, openvino_runtime
from models.manifest import Example
from models.pooling import Pooling
from models.preprocessing import decode_images
from models.train_config import TrainConfig
from models.training.data import TrainingData, run_on_images
from models.training.heads import class_weights
from models.training.layers import augmenter
from models.training.loop import cosine_steps, fit_model

log = logging.getLogger("imgclf.train")

History = dict[str, list[float]]


def freeze_batch_norm(model: keras.Model) -> None:
    """BatchNorm stays frozen: small fine-tuning batches would wreck its statistics."""
    for layer in model.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)


def fine_tune_end_to_end(
    backbone: keras.Model,
    head: keras.Model,
    data: TrainingData,
    config: TrainConfig,
    *,
    image_size: int,
    out_dir: str,
    deadline: float | None = None,
) -> tuple[keras.Model, History]:
    """Any backbone: decodes and augments every batch and trains the blocks from ``fine_tune_from_block`` up."""
    backbone.trainable = True  # a frozen parent hides every child's weights from the optimizer
    for layer in backbone.layers:
        index = efficientnet_lite0.block_index(layer.name)
        trainable = index is None or index >= config.fine_tune_from_block
        layer.trainable = trainable and not isinstance(layer, keras.layers.BatchNormalization)
        if config.backbone == "efficientnet_lite0" and layer.name.startswith(("conv_stem", "bn0")):
            layer.trainable = False
    classifier = keras.Sequential([backbone, head], name="classifier")
    augment = augmenter(config.augmentation, config.seed)

    def dataset(split: str, training: bool) -> tf.data.Dataset | None:
        if not data.by_split[split]:
            return None
        images = tf.data.Dataset.from_tensor_slices(tf.constant(data.images(split), dtype=tf.string))
        ds = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(data.targets(split))))
        if training:
            ds = ds.shuffle(len(data.by_split[split]), seed=config.seed, reshuffle_each_iteration=True)
        ds = ds.batch(config.batch_size).map(
            lambda b, y: (decode_images(b, image_size), y), num_parallel_calls=tf.data.AUTOTUNE
        )
        if training:
            ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    history = fit_model(
        classifier,
        data.spec,
        (dataset("train", True),),
        dataset("validation", False),
        epochs=config.fine_tune_epochs,
        learning_rate=config.fine_tune_learning_rate,
        patience=config.patience,
        phase="fine-tune",
        weights=class_weights(data.spec, data.split("train"), config.class_weights),
        checkpoint=str(Path(out_dir, "checkpoints", "fine_tune.weights.h5")),
        cosine_steps=cosine_steps(
            config.fine_tune_schedule, config.fine_tune_epochs, len(data.by_split["train"]), config.batch_size
        ),
        deadline=deadline,
    )
    return classifier, history


def caches_bottom(config: TrainConfig) -> bool:
    """Whether fine-tuning runs on cached bottom activations (the way that pays on a CPU)."""
    return bool(config.fine_tune_epochs and config.fine_tune_views and config.backbone == "efficientnet_lite0")


class FrozenBottom:
    """EfficientNet-Lite0 split where fine-tuning starts, with the bottom's activations of every unaugmented
    training and validation image computed once: through the untrained top they are the frozen features the
    head is trained on, and they are fine-tuning's first cached view. The test split's features are never used
    when fine-tuning follows, so its images are only decoded (to find the ones that do not)."""

    def __init__(
        self,
        image_size: int,
        from_block: int,
        weights: str | None,
        passes: int | None = None,
        pooling: Pooling = "average",
    ):
        self.bottom, self.top = efficientnet_lite0.build_split(image_size, from_block, weights or "imagenet", pooling)
        self.bottom.trainable = False
        self.backbone = keras.Sequential([self.bottom, self.top], name="efficientnet_lite0")
        self.image_size = image_size
        self.first_view: dict[str, np.ndarray] = {}
        self.passes = passes  # images the bottom will see, views included (None: many)

    @cached_property
    def fast_bottom(self) -> keras.Model | openvino_runtime.CompiledNetwork:
        """The bottom for forward passes only (its activations): on OpenVINO where that is faster."""
        return openvino_runtime.frozen(self.bottom, self.passes)

    def features(self, examples: list[Example], data: list[bytes]) -> tuple[np.ndarray, list[int]]:
        """As ``run_on_images(backbone, data)``: the features of the images that decode (zeros for test images),
        and their indices."""
        test = [i for i, e in enumerate(examples) if e.split == "test"]
        rest = [i for i, e in enumerate(examples) if e.split != "test"]
        acts, ok = run_on_images(
            self.fast_bottom, [data[i] for i in rest], self.image_size, "bottom activations", dtype=np.float16
        )
        decode_only = keras.Sequential(
            [keras.Input((self.image_size, self.image_size, 3)), keras.layers.GlobalAveragePooling2D()]
        )  # three numbers an image: only which images decode matters
        _, test_ok = run_on_images(decode_only, [data[i] for i in test], self.image_size, "test images decoded")
        rows = [rest[j] for j in ok]
        for split in ("train", "validation"):
            self.first_view[split] = acts[[k for k, i in enumerate(rows) if examples[i].split == split]]
        decoded = rows + [test[j] for j in test_ok]
        order = np.argsort(decoded, kind="stable")  # keep() takes rows in this order: first_view stays aligned
        features = np.zeros((len(decoded), self.top.output_shape[-1]), np.float32)
        if rows:
            features[: len(rows)] = np.concatenate(
                [self.top.predict_on_batch(acts[k : k + 64].astype(np.float32)) for k in range(0, len(acts), 64)]
            )  # a batch at a time: a float32 copy of every activation would double the peak memory
        return features[order], [decoded[k] for k in order]


def cache_activations(
    bottom: keras.Model | openvino_runtime.CompiledNetwork,
    images: list[bytes],
    *,
    image_size: int,
    views: int,
    augment: keras.Model,
    first: np.ndarray | None = None,
) -> np.ndarray:
    """The frozen bottom's activations for ``views`` augmented copies of each image (the first unaugmented,
    or ``first`` when already computed), as float16 ``[images, views, h, w, c]``."""
    out = [] if first is None else [first.astype(np.float16)]
    started = time.monotonic()
    for v in range(len(out), views):
        batches = tf.data.Dataset.from_tensor_slices(tf.constant(images, dtype=tf.string))
        batches = batches.batch(64).map(lambda b: decode_images(b, image_size), num_parallel_calls=tf.data.AUTOTUNE)
        if v:
            batches = batches.map(lambda x: augment(x, training=True), num_parallel_calls=tf.data.AUTOTUNE)
        out.append(np.concatenate([bottom.predict_on_batch(x).astype(np.float16) for x in batches]))
        log.info("cached bottom activations: view %d/%d (%.0fs)", v + 1, views, time.monotonic() - started)
    return np.stack(out, axis=1)


def fine_tune_cached(
    head: keras.Model,
    data: TrainingData,
    config: TrainConfig,
    *,
    image_size: int,
    out_dir: str,
    deadline: float | None = None,
    frozen: FrozenBottom | None = None,
) -> tuple[keras.Model, History]:
    """EfficientNet-Lite0: trains ``ensemble`` copies of the top and head on the same cached activations
    (each with its own shuffles and views) and averages them. ``frozen``: the split the head's features came
    from, whose first views are reused."""
    frozen = frozen or FrozenBottom(
        image_size,
        config.fine_tune_from_block,
        config.backbone_weights,
        len(data.data) * config.fine_tune_views,
        config.pooling,
    )
    bottom, top, fast_bottom = frozen.bottom, frozen.top, frozen.fast_bottom
    freeze_batch_norm(top)
    views = config.fine_tune_views
    train_count = len(data.by_split["train"])
    train_acts = tf.constant(
        cache_activations(
            fast_bottom,
            data.images("train"),
            image_size=image_size,
            views=views,
            augment=augmenter(config.augmentation, config.seed),
            first=frozen.first_view.get("train"),
        )
    )
    y_train = data.targets("train")

    def train_data(seed: int) -> tf.data.Dataset:
        return (
            tf.data.Dataset.range(train_count)
            .shuffle(train_count, seed=seed, reshuffle_each_iteration=True)
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
    if data.by_split["validation"]:
        val_acts = frozen.first_view.get("validation")
        if val_acts is None:
            val_acts = cache_activations(
                fast_bottom, data.images("validation"), image_size=image_size, views=1, augment=None
            )[:, 0]
        validation = (val_acts.astype(np.float32), data.targets("validation"))
    members, history, head_weights = [], {}, head.get_weights()
    for m in range(config.ensemble):
        if m:  # a fresh top and a copy of the trained head; its own shuffles and views
            keras.utils.set_random_seed(config.seed + m)
            top = efficientnet_lite0.build_split(
                image_size, config.fine_tune_from_block, config.backbone_weights or "imagenet", config.pooling
            )[1]
            freeze_batch_norm(top)
            member_head = keras.models.clone_model(head)
            member_head.set_weights(head_weights)
        member = keras.Sequential([top, head if m == 0 else member_head], name=f"top_and_head_{m}")
        member_history = fit_model(
            member,
            data.spec,
            (train_data(config.seed + m),),
            validation,
            epochs=config.fine_tune_epochs,
            learning_rate=config.fine_tune_learning_rate,
            patience=config.patience,
            phase="fine-tune" if config.ensemble == 1 else f"fine-tune {m + 1}/{config.ensemble}",
            weights=class_weights(data.spec, data.split("train"), config.class_weights),
            checkpoint=str(Path(out_dir, "checkpoints", f"fine_tune_{m}.weights.h5")),
            cosine_steps=cosine_steps(
                config.fine_tune_schedule, config.fine_tune_epochs, train_count, config.batch_size
            ),
            deadline=deadline,
        )
        members.append(member)
        for key, values in member_history.items():
            history.setdefault(key, []).extend(values)
        if deadline is not None and time.monotonic() >= deadline and m + 1 < config.ensemble:
            log.warning("out of time budget: the ensemble keeps %d of %d members", m + 1, config.ensemble)
            break
    inputs = keras.Input(bottom.input_shape[1:], name="image")
    features = bottom(inputs)
    outputs = [member(features) for member in members]
    output = keras.layers.Average(name="ensemble_mean")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, output, name="classifier"), history
