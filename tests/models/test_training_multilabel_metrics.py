"""A trained multilabel model records exact match as its accuracy: card, report, curves and log."""

import json
import logging

import numpy as np
import tensorflow as tf

from models.registry import ModelRegistry
from models.training import train
from tests.helpers import COLOURS, tiny_train_config, write_colour_dataset, write_csv


def test_multilabel_card_report_and_log_lead_with_exact_match(tmp_path, caplog):
    # "lucky" is on every third image whatever its colour: no model can learn it, so some
    # label sets are wrong while most single label decisions are right.
    rows = write_colour_dataset(tmp_path, list(COLOURS), 24)
    tags = {"red": "warm", "green": "cool;green", "blue": "cool"}
    splits = ["train"] * 16 + ["validation"] * 4 + ["test"] * 4
    body = [[rel, tags[c] + (";lucky" if i % 3 == 0 else ""), splits[i % 24]] for i, (rel, c) in enumerate(rows)]
    write_csv(tmp_path / "m.csv", ["image_uri", "labels", "split"], body)
    registry = ModelRegistry(str(tmp_path / "reg"))
    caplog.set_level(logging.INFO, logger="imgclf.train")
    config = tiny_train_config(model_name="ml", manifest=str(tmp_path / "m.csv"), epochs=10, fine_tune_epochs=1)
    card = train(config, registry).card

    test = card.metrics["test"]
    assert card.label_spec.labels == ["cool", "green", "lucky", "warm"] and test["count"] == 12
    # The headline is the share of test images whose label set the exported model gets exactly right.
    spec, test_rows = card.label_spec, [r for r in body if r[2] == "test"]
    signature = tf.saved_model.load(registry.resolve("ml").saved_model_uri).signatures["serving_default"]
    images = tf.constant([(tmp_path / r[0]).read_bytes() for r in test_rows])
    probs = signature(image_bytes=images)["probabilities"].numpy()
    right = [set(spec.decide(p)) == set(r[1].split(";")) for p, r in zip(probs, test_rows, strict=True)]
    assert test["accuracy"] == test["exact_match"] == np.mean(right)
    assert test["accuracy"] < test["per_label_accuracy"]
    assert test["per_label_accuracy"] == np.mean([test["per_label"][k]["accuracy"] for k in spec.labels])
    for split in ("validation", "test"):
        assert card.metrics[split]["accuracy"] == card.metrics[split]["exact_match"]

    report = json.loads((tmp_path / "reg/ml/versions/1/report/metrics.json").read_text())
    assert report["test"]["accuracy"] == test["exact_match"]
    assert report["test"]["per_label_accuracy"] == test["per_label_accuracy"]
    # The training curves show exact match beside per-label accuracy, under those names.
    history = card.training["history"]
    assert {"exact_match", "val_exact_match", "per_label_accuracy", "val_per_label_accuracy"} <= set(history)
    assert "binary_accuracy" not in history
    assert len(history["exact_match"]) == card.training["epochs_run"]
    assert any(
        f"test: 12 images, exact-match accuracy {test['accuracy']:.4f} (per-label accuracy" in r.getMessage()
        for r in caplog.records
    )
