import numpy as np
import pytest

from models.evaluation import choose_thresholds, evaluate, plot_confusion_matrix, plot_training_curves
from models.label_spec import LabelSpec


def test_binary_threshold_maximises_validation_accuracy():
    spec = LabelSpec(task="binary", labels=["ok", "bad"])
    p_bad = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7])
    truth = [("ok",), ("ok",), ("bad",), ("bad",), ("bad",), ("bad",)]
    threshold = choose_thresholds(spec, np.stack([1 - p_bad, p_bad], 1), truth)["bad"]
    assert 0.2 < threshold <= 0.3


def test_binary_threshold_stays_at_one_half_when_another_wins_only_by_noise():
    spec = LabelSpec(task="binary", labels=["ok", "bad"])
    rng = np.random.default_rng(0)
    truth_bad = rng.random(200) < 0.5  # balanced and symmetric: the best threshold is 0.5, plus noise
    p_bad = np.clip(np.where(truth_bad, 0.75, 0.25) + rng.normal(0, 0.2, 200), 0, 1)
    truth = [("bad",) if b else ("ok",) for b in truth_bad]
    assert choose_thresholds(spec, np.stack([1 - p_bad, p_bad], 1), truth)["bad"] == 0.5
    shifted = np.clip(p_bad + 0.3, 0, 1)  # a model whose scores sit 0.3 too high: the threshold follows
    assert choose_thresholds(spec, np.stack([1 - shifted, shifted], 1), truth)["bad"] > 0.65


def test_multilabel_thresholds_are_chosen_per_label_and_default_without_both_classes():
    spec = LabelSpec(task="multilabel", labels=["a", "b"])
    probs = np.array([[0.9, 0.2], [0.8, 0.4], [0.1, 0.3], [0.2, 0.1]])
    truth = [("a",), ("a",), (), ()]
    thresholds = choose_thresholds(spec, probs, truth)
    assert 0.2 < thresholds["a"] <= 0.8 and thresholds["b"] == 0.5


def test_evaluate_reports_accuracy_f1_confusion_and_ranking_metrics():
    spec = LabelSpec(task="multiclass", labels=["x", "y", "z"])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    m = evaluate(spec, probs, [("x",), ("y",), ("z",), ("y",)])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert m["per_label"]["y"]["recall"] == pytest.approx(0.5)
    assert m["per_label"]["z"]["roc_auc"] == pytest.approx(1.0)


def test_pictures_are_written(tmp_path):
    spec = LabelSpec(task="binary", labels=["ok", "bad"])
    plot_confusion_matrix(spec, [[5, 1], [2, 7]], str(tmp_path / "cm.png"), "t")
    plot_training_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, str(tmp_path / "tc.png"), "t")
    for name in ("cm.png", "tc.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
