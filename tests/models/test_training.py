"""Training on generated colour images with the small CNN: each task type, end to end."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models.manifest import ManifestError
from models.registry import ModelRegistry
from models.training import train
from tests.helpers import (
    COLOURS,
    colour_image,
    tiny_train_config,
    write_colour_dataset,
    write_csv,
    write_split_colour_manifest,
)


def _signature(registry: ModelRegistry, name: str):
    """The exported serving signature; load it once per test (a large SavedModel takes seconds)."""
    signature = tf.saved_model.load(registry.resolve(name).saved_model_uri).signatures["serving_default"]
    return lambda images: signature(image_bytes=tf.constant(images))["probabilities"].numpy()


def _signature_probabilities(registry: ModelRegistry, name: str, images: list[bytes]) -> np.ndarray:
    return _signature(registry, name)(images)


def test_multiclass_model_is_registered_with_card_metrics_and_report(trained_registry):
    registry = ModelRegistry(str(trained_registry))
    card = registry.resolve("colours").card
    assert card.label_spec.task.value == "multiclass" and card.label_spec.labels == sorted(COLOURS)
    assert card.metrics["test"]["count"] == 12 and card.metrics["test"]["accuracy"] >= 0.9
    assert card.training["counts"] == {"train": 48, "validation": 12, "test": 12}
    assert len(card.data_fingerprint) == 64
    report = trained_registry / "colours/versions/1/report"
    assert {p.name for p in report.iterdir()} == {"metrics.json", "training_curves.png", "confusion_matrix.png"}
    probs = _signature_probabilities(registry, "colours", [colour_image("blue", 999), colour_image("red", 998)])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert [card.label_spec.decide(p)[0] for p in probs] == ["blue", "red"]


def test_every_version_gets_an_openvino_artifact_that_passed_the_gate_on_its_test_split(trained_registry):
    card = ModelRegistry(str(trained_registry)).card("colours", 1)
    gate = card.runtimes["openvino"]
    assert gate.passed and gate.precision == "f32" and (gate.split, gate.images) == ("test", 12), gate.reason
    assert gate.max_abs_diff <= 1e-4 and gate.decisions_changed == 0
    assert gate.metrics["accuracy"] == card.metrics["test"]["accuracy"]
    assert {p.name for p in (trained_registry / "colours/versions/1/openvino").iterdir()} == {"model.xml", "model.bin"}


def test_openvino_off_registers_the_saved_model_alone(colour_data, tmp_path):
    config = tiny_train_config(model_name="c", manifest=str(colour_data / "manifest.csv"), epochs=2, openvino="off")
    assert train(config, ModelRegistry(str(tmp_path))).card.runtimes == {}
    assert not (tmp_path / "c/versions/1/openvino").exists()


def test_binary_model_outputs_both_probabilities_and_a_chosen_threshold(tmp_path):
    rows = write_colour_dataset(tmp_path, ["red", "blue"], 20)
    write_csv(tmp_path / "m.csv", ["image_uri", "labels"], [[rel, c] for rel, c in rows])
    registry = ModelRegistry(str(tmp_path / "reg"))
    result = train(
        tiny_train_config(model_name="rb", manifest=str(tmp_path / "m.csv"), labels=["red", "blue"]), registry
    )
    spec = result.card.label_spec
    assert spec.task.value == "binary" and spec.positive_label == "blue"
    assert set(spec.thresholds) <= {"blue"}
    probs = _signature_probabilities(registry, "rb", [colour_image("blue", 500)])
    assert probs.shape == (1, 2) and probs[0, 1] > 0.5


def test_multilabel_thresholds_are_per_label(tmp_path):
    # Labels "warm" (red) and "cool" (blue/green), and "green" itself: some images carry two labels.
    rows = write_colour_dataset(tmp_path, list(COLOURS), 20)
    tags = {"red": "warm", "green": "cool;green", "blue": "cool"}
    write_csv(tmp_path / "m.csv", ["image_uri", "labels"], [[rel, tags[c]] for rel, c in rows])
    result = train(
        tiny_train_config(model_name="ml", manifest=str(tmp_path / "m.csv")), ModelRegistry(str(tmp_path / "reg"))
    )
    spec = result.card.label_spec
    assert spec.task.value == "multilabel" and spec.labels == ["cool", "green", "warm"]
    assert result.card.metrics["validation"]["per_label"]["green"]["support"] > 0


def test_a_second_version_becomes_candidate_unless_promoted(colour_data, tmp_path):
    registry = ModelRegistry(str(tmp_path))
    config = tiny_train_config(model_name="c", manifest=str(colour_data / "manifest.csv"), epochs=2)
    assert train(config, registry).aliases_set == ["production"]
    second = train(config, registry)
    assert second.aliases_set == ["candidate"] and second.card.parent_version == 1
    assert registry.aliases("c") == {"production": 1, "candidate": 2}
    train(config.model_copy(update={"promote": True}), registry)
    assert registry.alias("c", "production") == 3


def test_unknown_label_against_production_names_it(colour_data, registry_root, tmp_path):
    registry = ModelRegistry(str(registry_root))  # 'colours' v1 (blue, green, red) is production
    write_csv(
        tmp_path / "new.csv",
        ["image_uri", "labels"],
        [[str(colour_data / "red/0.png"), "red"], [str(colour_data / "red/1.png"), "crimson"]],
    )
    with pytest.raises(ManifestError, match="unknown label 'crimson' in 1 rows \\(rows 2\\)"):
        train(tiny_train_config(model_name="colours", manifest=str(tmp_path / "new.csv")), registry)
    assert registry.versions("colours") == [1]


def test_unreadable_images_are_listed_by_row_unless_skipped(tmp_path):
    rows = write_colour_dataset(tmp_path, ["red", "blue"], 10)
    (tmp_path / "broken.png").write_bytes(colour_image("red", 1)[:60])  # header fine, pixels cut off
    body = [[rel, c, "train"] for rel, c in rows]
    write_csv(tmp_path / "missing.csv", ["image_uri", "labels", "split"], body + [["missing.png", "blue", "train"]])
    write_csv(tmp_path / "broken.csv", ["image_uri", "labels", "split"], body + [["broken.png", "red", "train"]])
    write_csv(
        tmp_path / "both.csv",
        ["image_uri", "labels", "split"],
        body + [["broken.png", "red", "train"], ["missing.png", "blue", "train"]],
    )
    registry = ModelRegistry(str(tmp_path / "reg"))

    for manifest, row, code in (("missing.csv", 21, "not_found"), ("broken.csv", 21, "decode_error")):
        with pytest.raises(ManifestError) as e:
            train(tiny_train_config(model_name="b", manifest=str(tmp_path / manifest), epochs=1), registry)
        assert f"1 of 21 images cannot be used:\n  row {row} (" in str(e.value)
        assert code in str(e.value) and "--skip-bad-rows" in str(e.value)

    config = tiny_train_config(model_name="b", manifest=str(tmp_path / "both.csv"), epochs=1, skip_bad_rows=True)
    result = train(config, registry)
    assert [line.split(" (")[0] for line in result.skipped_rows] == ["row 22", "row 21"]
    assert result.card.training["counts"]["train"] == 20 and result.card.training["skipped_rows"] == 2


def test_a_single_label_task_rejects_rows_with_several_labels(tmp_path):
    write_csv(tmp_path / "m.csv", ["image_uri", "labels"], [["a.png", "red"], ["b.png", "red;blue"], ["c.png", "blue"]])
    config = tiny_train_config(model_name="x", manifest=str(tmp_path / "m.csv"), task="multiclass")
    with pytest.raises(ManifestError, match=r"rows \[2\] have none or several.*--task multilabel"):
        train(config, ModelRegistry(str(tmp_path / "reg")))


def test_fine_tuning_trains_the_backbone_after_the_head(colour_data, tmp_path):
    config = tiny_train_config(
        model_name="ft", manifest=str(colour_data / "manifest.csv"), epochs=15, fine_tune_epochs=2
    )
    result = train(config, ModelRegistry(str(tmp_path)))
    assert result.card.training["fine_tuned_backbone_parameters"] > 20_000  # small_cnn's convolutions
    assert result.card.training["epochs_run"] == 17
    assert result.card.metrics["test"]["accuracy"] >= 0.9


def test_cosine_fine_tuning_runs_every_epoch_and_decays_the_rate_to_zero(colour_data, tmp_path):
    config = tiny_train_config(
        model_name="cos",
        manifest=str(colour_data / "manifest.csv"),
        epochs=15,
        patience=1,
        fine_tune_epochs=4,
        fine_tune_schedule="cosine",
    )
    training = train(config, ModelRegistry(str(tmp_path))).card.training
    assert training["fine_tune_epochs_run"] == 4  # the head may stop early; cosine fine-tuning may not
    rates = training["history"]["learning_rate"][-4:]
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.2 * config.fine_tune_learning_rate


def test_balanced_class_weights_make_each_class_count_equally():
    from models.label_spec import LabelSpec
    from models.manifest import Example
    from models.training import class_weights

    spec = LabelSpec(task="binary", labels=["ok", "bad"])
    examples = [Example(str(i), ("ok",), "train") for i in range(30)] + [Example("b", ("bad",), "train")] * 10
    weights = class_weights(spec, examples, "balanced")
    assert weights == {0: pytest.approx(40 / 60), 1: pytest.approx(40 / 20)}
    assert class_weights(spec, examples, "none") is None


def test_every_augmentation_layer_keeps_the_image_shape():
    from models.train_config import AugmentationConfig
    from models.training import augmenter

    config = AugmentationConfig(rotation=0.1, zoom=0.2, contrast=0.2, brightness=0.2, transpose=True)
    images = tf.random.uniform((2, 32, 32, 3), 0, 255)
    out = augmenter(config, seed=1)(images, training=True)
    assert out.shape == (2, 32, 32, 3) and len(augmenter(config, 1).layers) == 6


def test_cached_fine_tuning_ensemble_with_tta_exports_a_consistent_model(tmp_path):
    """Two EfficientNet tops (GeM-pooled, as the planner fine-tunes them) trained on the same cached bottom
    activations; the export averages the members and the 8 symmetries."""
    manifest, rows = write_split_colour_manifest(tmp_path)
    config = tiny_train_config(
        model_name="ct",
        manifest=str(tmp_path / "m.csv"),
        backbone="efficientnet_lite0",
        image_size=64,
        epochs=5,
        fine_tune_epochs=2,
        fine_tune_views=2,
        fine_tune_from_block=14,
        tta="dihedral",
        learning_rate=0.01,
        ensemble=2,
        pooling="gem",
    )
    registry = ModelRegistry(str(tmp_path / "reg"))
    result = train(config, registry)
    assert (result.card.training["epochs_run"], result.card.training["fine_tune_epochs_run"]) == (9, 4)
    assert result.card.training["fine_tuned_backbone_parameters"] > 2e6  # two tops
    assert result.card.training["pooling"] == "gem"
    assert result.card.metrics["test"]["accuracy"] == 1.0
    assert result.card.runtimes["openvino"].passed, result.card.runtimes["openvino"].reason  # converts, same answers
    images = [colour_image("red", 900), colour_image("blue", 901)]
    classify = _signature(registry, "ct")
    probs = classify(images)
    mirrored = io.BytesIO()
    Image.open(io.BytesIO(images[0])).transpose(Image.ROTATE_90).save(mirrored, format="PNG")
    flipped = classify([mirrored.getvalue()])
    assert [result.card.label_spec.decide(p) for p in probs] == [["red"], ["blue"]]
    np.testing.assert_allclose(probs[0], flipped[0], atol=1e-4)  # a rotated image has the same 8 views
