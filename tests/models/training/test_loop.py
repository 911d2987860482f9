"""The one fitting loop: a deadline stops training between epochs and keeps the weights."""

import time

import numpy as np

from models.label_spec import LabelSpec, Task
from models.training.heads import build_head
from models.training.loop import cosine_steps, fit_model

SPEC = LabelSpec(task=Task.BINARY, labels=["no", "yes"])


def _xy(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    return x, (x[:, :1] > 0).astype(np.float32)


def test_a_passed_deadline_stops_after_the_first_epoch():
    head = build_head(SPEC, 8, 0.0)
    history = fit_model(
        head,
        SPEC,
        _xy(),
        None,
        epochs=50,
        learning_rate=0.01,
        patience=50,
        phase="head",
        batch_size=16,
        deadline=time.monotonic() - 1,
    )
    assert len(history["loss"]) == 1


def test_without_a_deadline_every_epoch_runs_on_a_cosine_schedule_down_to_zero():
    head = build_head(SPEC, 8, 0.0)
    steps = cosine_steps("cosine", 5, 64, 16)
    history = fit_model(
        head,
        SPEC,
        _xy(),
        None,
        epochs=5,
        learning_rate=0.01,
        patience=1,
        phase="head",
        batch_size=16,
        cosine_steps=steps,
    )
    assert len(history["loss"]) == 5 and history["learning_rate"][-1] < 1e-6
    assert cosine_steps("constant", 5, 64, 16) is None and steps == 20
