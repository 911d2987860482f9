"""The conditional GAN for rare classes: augmentation, generation, refusals, and its use by train."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models.label_spec import LabelSpec, Task
from models.manifest import ManifestError, read_manifest
from models.registry import ModelRegistry
from models.train_config import SynthesisConfig
from models.training import train
from models.training.data import TrainingData
from models.training.synthesis import diff_augment, is_synthetic, synthesise
from tests.helpers import tiny_train_config, write_split_colour_manifest

TINY_GAN = SynthesisConfig(image_size=16, steps=4, batch_size=8)


@pytest.fixture
def colours(tmp_path):
    return write_split_colour_manifest(tmp_path)[0]


def _data(manifest) -> TrainingData:
    examples = read_manifest(str(manifest))
    return TrainingData(
        LabelSpec(task=Task.MULTICLASS, labels=["blue", "red"]),
        examples,
        [open(e.image_uri, "rb").read() for e in examples],
    )


def test_diff_augment_keeps_the_shape_passes_gradients_and_repeats_with_its_seed():
    x = tf.Variable(tf.random.uniform([4, 16, 16, 1], -1, 1))
    with tf.GradientTape() as tape:
        y = diff_augment(x, tf.constant([1, 2], tf.int64))
        loss = tf.reduce_sum(y)
    assert y.shape == x.shape and tape.gradient(loss, x) is not None
    assert np.array_equal(y.numpy(), diff_augment(x, tf.constant([1, 2], tf.int64)).numpy())
    assert not np.array_equal(y.numpy(), x.numpy())


def test_synthetic_images_join_the_train_split_only_and_decode(colours):
    data = _data(colours)
    result = synthesise(data, TINY_GAN, {"red": 5, "blue": 2}, seed=0)
    added = [e for e in result.data.examples if is_synthetic(e)]
    assert len(added) == 7 and {e.split for e in added} == {"train"} and result.steps == 4
    assert sorted(e.labels[0] for e in added) == ["blue"] * 2 + ["red"] * 5
    assert result.data.counts() == {"train": 23, "validation": 4, "test": 4}
    image = Image.open(io.BytesIO(result.data.data[-1]))
    assert image.size == (16, 16) and image.mode == "RGB"  # colour data: colour images
    assert Image.open(io.BytesIO(result.grid_png)).size == (8 * 16, 2 * 16)  # 8 samples per label


def test_a_multilabel_task_or_an_unknown_label_is_refused_by_name(colours):
    data = _data(colours)
    with pytest.raises(ManifestError, match=r"unknown labels \['green'\]"):
        synthesise(data, TINY_GAN, {"green": 3}, seed=0)
    multilabel = TrainingData(LabelSpec(task=Task.MULTILABEL, labels=["blue", "red"]), data.examples, data.data)
    with pytest.raises(ManifestError, match="single-label"):
        synthesise(multilabel, TINY_GAN, {"red": 3}, seed=0)


def test_train_records_the_synthesis_shows_samples_and_keeps_them_out_of_the_fingerprint(colours, tmp_path):
    registry = ModelRegistry(str(tmp_path / "reg"))
    base = dict(manifest=str(colours), labels=["blue", "red"], task="multiclass", epochs=3)
    plain = train(tiny_train_config(model_name="plain", **base), registry).card
    card = train(
        tiny_train_config(model_name="gan", synthetic={"red": 6}, gan=TINY_GAN.model_dump(), **base), registry
    ).card
    assert card.training["counts"]["synthetic"] == 6 and card.training["synthesis"]["steps"] == 4
    assert card.data_fingerprint == plain.data_fingerprint
    assert (tmp_path / "reg/gan/versions/1/report/synthetic_samples.png").is_file()
    assert card.metrics["test"]["count"] == 4  # nothing synthetic is evaluated
