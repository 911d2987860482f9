"""`imgclf pretrain`: SimSiam on cached views saves a backbone that train starts from.

One small pretraining run (12 colour-field images at 64 px, 2 epochs) serves most tests;
the CLI test runs its own, of one epoch. The cost is mostly tracing the top's training step.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest

from models import efficientnet_lite0
from models.locations import OutputRefused
from tests.helpers import colour_image, write_colour_dataset, write_csv, write_split_colour_manifest

SIZE = 64


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """`imgclf pretrain` on 12 images and a broken one: the result read back, the log lines, stdout and argv."""
    from imgclf.cli import main
    from models.settings import get_settings
    from models.training.pretrain import PretrainResult

    root = tmp_path_factory.mktemp("unlabelled")
    write_colour_dataset(root / "images", ["red", "green", "blue"], 4)
    (root / "images/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    args = ["pretrain", "--images", str(root / "images"), "--model", "cells"]
    args += ["--epochs", "2", "--views", "3", "--image-size", str(SIZE), "--seed", "1"]
    records, stdout = _Records(), io.StringIO()
    logger = logging.getLogger("imgclf.pretrain")
    logger.addHandler(records)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_DATA_DIR", str(root / "var"))
        get_settings.cache_clear()
        try:
            with contextlib.redirect_stdout(stdout):
                assert main(args) == 0
        finally:
            logger.removeHandler(records)
            get_settings.cache_clear()
    output = root / "var/backbones/cells/backbone.npz"
    sidecar = json.loads(Path(f"{output}.json").read_text())
    result = PretrainResult(
        output=str(output),
        sidecar=f"{output}.json",
        plot=f"{output}.loss.png",
        images=sidecar["images"],
        skipped=sidecar["skipped"],
        epochs_run=sidecar["epochs_run"],
        stopped=sidecar["stopped"],
        history=sidecar["history"],
        seconds=sidecar["seconds"]["total"],
    )
    return result, records.lines, stdout.getvalue(), args, root


def test_pretraining_logs_a_finite_loss_per_epoch_and_records_it_beside_the_backbone(pretrained):
    result, lines, _, _, _ = pretrained
    assert (result.epochs_run, result.stopped, result.images, result.skipped) == (2, "epochs", 12, 1)
    assert all(math.isfinite(loss) and -1 <= loss <= 1 for loss in result.history["loss"])
    assert all(std > 0.1 for std in result.history["std"])  # no collapse
    assert [line.split("  ")[0] for line in lines if line.startswith("pretrain epoch")] == [
        "pretrain epoch 1/2",
        "pretrain epoch 2/2",
    ]
    assert "loss" in lines[-2] and "std" in lines[-2] and "saved the pretrained backbone" in lines[-1]
    sidecar = json.loads(Path(result.sidecar).read_text())
    assert sidecar["method"] == "simsiam" and sidecar["images"] == 12 and sidecar["skipped"] == 1
    assert sidecar["config"]["from_block"] == 5 and sidecar["history"]["loss"] == result.history["loss"]
    assert sidecar["use"]["retraining"] == {"trainer": {"backbone_weights": result.output}}
    assert Path(result.plot).read_bytes().startswith(b"\x89PNG")


def test_the_saved_backbone_reloads_with_the_bottom_unchanged_and_the_top_trained(pretrained):
    result, *_ = pretrained
    bottom, top = efficientnet_lite0.build_split(SIZE, 5, result.output)
    ref_bottom, ref_top = efficientnet_lite0.build_split(SIZE, 5, "imagenet")
    for mine, ref in zip(bottom.weights, ref_bottom.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), ref.numpy())
    changed = {
        layer.name
        for layer, ref in zip(top.layers, ref_top.layers, strict=True)
        if any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), ref.get_weights(), strict=True))
    }
    assert "conv_head" in changed and "blocks.5.expand_conv" in changed
    assert not [name for name in changed if "bn" in name]  # BatchNorm frozen, statistics included
    efficientnet_lite0.build(SIZE, weights=result.output)  # the whole network loads it too


def test_train_with_backbone_weights_starts_from_the_pretrained_backbone(pretrained, tmp_path, monkeypatch):
    from models.training import load_examples, load_images, resolve_label_spec
    from tests.helpers import tiny_train_config

    result, *_ = pretrained
    write_split_colour_manifest(tmp_path, per_colour=6)
    config = tiny_train_config(
        model_name="pre",
        manifest=str(tmp_path / "m.csv"),
        backbone="efficientnet_lite0",
        image_size=SIZE,
        backbone_weights=result.output,
        recipe="fast",
        epochs=2,
    )
    fit_module = importlib.import_module("models.training.fit")  # the package's `fit` is the function
    exported = {}
    monkeypatch.setattr(fit_module, "export_saved_model", lambda model, *a, **k: exported.setdefault("model", model))
    examples, data, _ = load_images(load_examples(config), config)
    candidate = fit_module.fit(config, resolve_label_spec(examples, config, None), examples, data, str(tmp_path / "o"))
    assert candidate.card.training["backbone_weights"] == result.output

    backbone = exported["model"].layers[0]
    images = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    features = backbone.predict_on_batch(images)
    pretrained_features = efficientnet_lite0.build(SIZE, weights=result.output).predict_on_batch(images)
    imagenet_features = efficientnet_lite0.build(SIZE, weights="imagenet").predict_on_batch(images)
    np.testing.assert_allclose(features, pretrained_features, rtol=1e-4, atol=1e-4)
    assert np.abs(features - imagenet_features).max() > 1e-3


def test_an_existing_output_is_refused_before_any_work(tmp_path):
    from models.training.pretrain import PretrainConfig, pretrain

    output = tmp_path / "backbone.npz"
    output.write_bytes(b"someone else's")
    with pytest.raises(OutputRefused, match="already exists"):
        pretrain([colour_image("red", 1)] * 4, PretrainConfig(image_size=SIZE), str(output))
    assert output.read_bytes() == b"someone else's"


def test_unreadable_images_are_counted_not_fatal(tmp_path):
    from imgclf.image_source import image_uris, read_image_source
    from models.training.pretrain import decodable

    (tmp_path / "a/b").mkdir(parents=True)
    good = colour_image("red", 1)
    (tmp_path / "a/1.png").write_bytes(good)
    (tmp_path / "a/b/2.png").write_bytes(colour_image("blue", 2))
    (tmp_path / "a/b/empty.jpg").write_bytes(b"")
    (tmp_path / "a/b/junk.png").write_bytes(b"not an image")
    (tmp_path / "a/notes.txt").write_text("not listed: no image extension")
    found = read_image_source(str(tmp_path / "a"), max_bytes=10**7, max_pixels=10**8)
    assert (len(found.images), len(found.skipped)) == (2, 2)
    assert any("empty.jpg" in s for s in found.skipped) and any("junk.png" in s for s in found.skipped)

    # A CSV (paths relative to it, a missing one skipped) and a glob name images too.
    write_csv(tmp_path / "a/list.csv", ["image_uri"], [["1.png"], ["b/2.png"], ["gone.png"]])
    from_csv = read_image_source(str(tmp_path / "a/list.csv"), max_bytes=10**7, max_pixels=10**8)
    assert (len(from_csv.images), len(from_csv.skipped)) == (2, 1) and "gone.png" in from_csv.skipped[0]
    assert [Path(u).name for u in image_uris(str(tmp_path / "a/**/*.png"))] == ["1.png", "2.png", "junk.png"]

    # A header that passes the checks over a body that does not decode: left out, not a crash.
    assert decodable([good, good[: len(good) // 2], good]) == [0, 2]


def test_the_cli_saves_into_the_data_dir_prints_the_train_command_and_refuses_to_overwrite(
    pretrained, monkeypatch, capsys
):
    from imgclf.cli import main
    from models.settings import get_settings

    result, _, out, args, root = pretrained
    saved = root / "var/backbones/cells/backbone.npz"
    assert result.output == str(saved) and saved.is_file()
    assert "12 images from" in out and "1 unreadable (skipped)" in out
    assert f"--image-size {SIZE} --backbone-weights {saved}" in out
    assert f"trainer: {{backbone_weights: {saved}}}" in out

    monkeypatch.setenv("IMGCLF_DATA_DIR", str(root / "var"))
    get_settings.cache_clear()
    try:
        before = saved.read_bytes()
        assert main(args) == 2  # a second run refuses before reading an image, naming the file
        assert "already exists" in capsys.readouterr().err and saved.read_bytes() == before
    finally:
        get_settings.cache_clear()


def test_a_budget_caches_fewer_views_and_stops_after_the_epoch_that_passes_it():
    import keras
    import tensorflow as tf

    from models.pretrain_config import PretrainConfig
    from models.training import pretrain as pretrain_module

    config = PretrainConfig(epochs=3, views=6, batch_size=4, image_size=SIZE, budget="1s")
    images = [colour_image("red", i) for i in range(4)]
    assert pretrain_module._views_within_budget(images, config, time.monotonic() + 1) == 2
    top = keras.Sequential(  # a stand-in for the top: the loop, not the network, is under test
        [keras.Input((4, 4, 8)), keras.layers.Conv2D(16, 1), keras.layers.GlobalAveragePooling2D()]
        + [keras.layers.Dense(1280)]
    )
    acts = tf.random.uniform((8, 2, 4, 4, 8))
    history, stopped = pretrain_module._train(top, acts, config, deadline=time.monotonic())
    assert (len(history["loss"]), stopped) == (1, "budget")
