"""The parity gate keeps an OpenVINO artifact only when it gives the SavedModel's answers."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from models import parity
from models.export import export_saved_model
from models.label_spec import LabelSpec, Task
from models.prediction import ErrorCode, ImageError
from tests.helpers import COLOURS, colour_image

SIZE = 32
SPEC = LabelSpec(task=Task.MULTICLASS, labels=list(COLOURS))


def _classifier(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(COLOURS), activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def split():
    colours = list(COLOURS)
    images = [colour_image(colours[i % 3], i) for i in range(30)]
    return images, [[colours[i % 3]] for i in range(30)]


def _export(tmp_path: Path, model: keras.Model) -> str:
    saved = str(tmp_path / "saved_model")
    export_saved_model(model, SPEC, SIZE, saved)
    return saved


def test_an_artifact_of_the_same_network_passes_and_is_registered(tmp_path, split):
    model = _classifier()
    saved = _export(tmp_path, model)

    check, files = parity.export_checked(model, SPEC, SIZE, str(tmp_path), saved, "test", *split)

    assert check.passed and check.split == "test" and check.images == 30, check.reason
    assert check.max_abs_diff <= parity.MAX_ABS_DIFF and check.decisions_changed == 0
    assert check.images_per_s > 0 and check.tf_images_per_s > 0 and check.metrics["count"] == 30
    assert sorted(files) == ["openvino/model.bin", "openvino/model.xml"]
    assert all(Path(p).is_file() for p in files.values())


def test_a_perturbed_artifact_is_refused_and_removed(tmp_path, split):
    model = _classifier()
    saved = _export(tmp_path, model)
    perturbed = _classifier()
    perturbed.set_weights([w + np.float32(0.05) for w in model.get_weights()])

    check, files = parity.export_checked(perturbed, SPEC, SIZE, str(tmp_path), saved, "test", *split)

    assert not check.passed and files == {}
    assert check.max_abs_diff > parity.MAX_ABS_DIFF and "the gate allows" in check.reason
    assert not (tmp_path / "openvino").exists()


def test_an_image_that_fails_on_one_runtime_only_fails_the_gate():
    p = np.array([0.7, 0.2, 0.1])
    error = ImageError(ErrorCode.DECODE_ERROR, "bad")

    check = parity.compare(SPEC, [p, p], [p, error], [["red"], ["red"]])

    assert not check.passed and "1 images failed on one runtime only" in check.reason
    assert parity.compare(SPEC, [p, error], [p, error], [["red"], ["red"]]).passed  # failing on both is parity


def test_reduced_precision_is_judged_by_accuracy_not_identical_probabilities():
    truth = [["red"]] * 200
    reference = [np.array([0.9, 0.05, 0.05])] * 200
    close = [np.array([0.88, 0.07, 0.05])] * 200
    one_wrong = close[:199] + [np.array([0.3, 0.6, 0.1])]  # 0.5 points of accuracy lost
    two_wrong = close[:198] + [np.array([0.3, 0.6, 0.1])] * 2  # 1 point

    assert not parity.compare(SPEC, reference, close, truth, "f32").passed  # 0.02 apart: not f32 parity
    assert parity.compare(SPEC, reference, close, truth, "bf16").passed
    assert parity.compare(SPEC, reference, one_wrong, truth, "bf16").passed
    refused = parity.compare(SPEC, reference, two_wrong, truth, "bf16")
    assert not refused.passed and "accuracy -0.0100" in refused.reason and refused.precision == "bf16"
