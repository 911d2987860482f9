"""Tuner: a KerasTuner search over the head's hyperparameters, within a trial and time budget.

It searches on the frozen backbone's features, which the Trainer computes once anyway,
so a trial costs seconds, not a pass over the images. The best values feed the head's
training and are recorded as the run's tuning artifact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner
import numpy as np
from pydantic import BaseModel, Field

log = logging.getLogger("imgclf.train")


class TunerConfig(BaseModel):
    enabled: bool = False
    max_trials: int = Field(8, ge=1)
    max_seconds: float = Field(300, gt=0, description="No new trial starts after this.")
    learning_rate: tuple[float, float] = (1e-4, 3e-2)
    dropout: tuple[float, float] = (0.0, 0.5)
    batch_size: list[int] = Field(default_factory=lambda: [16, 32, 64])
    seed: int = 0


class _Budgeted(keras_tuner.RandomSearch):
    """RandomSearch that starts no trial once the time budget is spent."""

    def __init__(self, *args, max_seconds: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = time.monotonic() + max_seconds

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # KerasTuner imports tensorboard here for its TensorBoard callback, which we never pass;
        # TensorFlow 2.21 no longer installs tensorboard, so skip the import.
        return

    def pre_create_trial(self):
        if time.monotonic() > self._deadline:
            self.oracle.max_trials = len(self.oracle.trials)
        super().pre_create_trial()


class _HeadSearch(keras_tuner.HyperModel):
    def __init__(self, build: Callable[[float, float], keras.Model], config: TunerConfig):
        super().__init__()
        self.build_head, self.config = build, config

    def build(self, hp):
        lr = hp.Float("learning_rate", *self.config.learning_rate, sampling="log")
        dropout = hp.Float("dropout", *self.config.dropout)
        return self.build_head(dropout, lr)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.Choice("batch_size", self.config.batch_size), **kwargs)


def tune_head(
    build: Callable[[float, float], keras.Model],
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    epochs: int,
    patience: int,
    config: TunerConfig,
    directory: str,
    weights: dict[int, float] | None = None,
) -> dict[str, Any]:
    """Best hyperparameters (learning_rate, dropout, batch_size) by validation loss, and the trials."""
    started = time.monotonic()
    tuner = _Budgeted(
        _HeadSearch(build, config),
        objective="val_loss",
        max_trials=config.max_trials,
        max_seconds=config.max_seconds,
        seed=config.seed,
        directory=directory,
        project_name="head",
        overwrite=True,
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    tuner.search(*train, validation_data=validation, epochs=epochs, callbacks=[stop], verbose=0, class_weight=weights)
    trials = [
        {"values": t.hyperparameters.values, "val_loss": t.score}
        for t in tuner.oracle.trials.values()
        if t.score is not None
    ]
    best = tuner.get_best_hyperparameters(1)[0].values
    log.info("tuner: %d trials in %.0fs, best %s", len(trials), time.monotonic() - started, best)
    return {
        "best": best,
        "trials": sorted(trials, key=lambda t: t["val_loss"]),
        "seconds": round(time.monotonic() - started, 1),
    }
