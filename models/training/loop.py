"""One Keras fitting loop for every phase: early stopping or a cosine schedule, progress, a deadline."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import tensorflow as tf

from models.label_spec import LabelSpec
from models.training.heads import compile_model

log = logging.getLogger("imgclf.train")


class EpochLog(keras.callbacks.Callback):
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


class Deadline(keras.callbacks.Callback):
    """Stops after the epoch that passes ``deadline`` (a ``time.monotonic()`` value): the budget's safety net
    when the planner's estimate was low. Training keeps the weights it has."""

    def __init__(self, deadline: float, phase: str):
        super().__init__()
        self.deadline, self.phase, self.fired = deadline, phase, False

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() >= self.deadline and not self.fired:
            self.fired = True
            self.model.stop_training = True
            log.warning(
                "%s: out of time budget after epoch %d; stopping with the weights so far", self.phase, epoch + 1
            )


def cosine_steps(schedule: str, epochs: int, train_count: int, batch_size: int) -> int | None:
    return epochs * -(-train_count // batch_size) if schedule == "cosine" else None


def fit_model(
    model: keras.Model,
    spec: LabelSpec,
    train: tuple,
    validation: tuple | None,
    *,
    epochs: int,
    learning_rate: float,
    patience: int,
    phase: str,
    weights: dict[int, float] | None = None,
    checkpoint: str | None = None,
    batch_size: int | None = None,
    cosine_steps: int | None = None,
    deadline: float | None = None,
) -> dict[str, list[float]]:
    """Fits with early stopping on the validation loss; or, given ``cosine_steps``, with a learning rate
    decaying to zero over that many steps, keeping the last weights.

    Args:
      train: ``(x, y)`` arrays, or ``(dataset,)`` of batches that shuffles itself.
      checkpoint: weights file kept up to date, so a crash of a long run loses little.
      deadline: a ``time.monotonic()`` value after which no new epoch starts.
    """
    if cosine_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, cosine_steps)
    compile_model(model, spec, learning_rate)
    monitor = "val_loss" if validation is not None else "loss"
    epoch_log = EpochLog(phase, epochs)
    callbacks: list[keras.callbacks.Callback] = [epoch_log]
    if not cosine_steps:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
    if checkpoint:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                checkpoint, monitor=monitor, save_best_only=not cosine_steps, save_weights_only=True
            )
        )
    if deadline is not None:
        callbacks.append(Deadline(deadline, phase))
    is_dataset = isinstance(train[0], tf.data.Dataset)
    history = model.fit(
        *train,
        validation_data=validation,
        epochs=epochs,
        verbose=0,
        callbacks=callbacks,
        shuffle=not is_dataset,
        class_weight=weights,
        batch_size=None if is_dataset else batch_size,
    )
    return {**{k: [float(v) for v in vs] for k, vs in history.history.items()}, "learning_rate": epoch_log.rates}
