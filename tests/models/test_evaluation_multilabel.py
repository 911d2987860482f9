"""Multilabel metrics: the headline accuracy is exact match, the per-label figure sits beside it."""

import numpy as np
import pytest
from sklearn import metrics as skm

from models.evaluation import accuracy_text, evaluate
from models.label_spec import LabelSpec

LABELS = ["a", "b", "c", "d", "e"]
# Ten images; the model misses exactly one label on four of them (rows 6-9) and gets the rest right.
TRUTH = [("a",), ("b",), ("c", "d"), (), ("e",), ("a", "e"), ("b",), ("c",), ("d", "a"), ("e",)]
PREDICTED = [("a",), ("b",), ("c", "d"), (), ("e",), ("a", "e"), ("b", "c"), (), ("d",), ("e", "b")]


def _probabilities(spec: LabelSpec, label_sets) -> np.ndarray:
    """0.9 for a predicted label, 0.1 otherwise: the default 0.5 thresholds decide ``label_sets``."""
    return 0.1 + 0.8 * spec.indicator(label_sets).astype(np.float64)


def test_multilabel_accuracy_is_exact_match_and_per_label_accuracy_is_beside_it():
    spec = LabelSpec(task="multilabel", labels=LABELS)
    m = evaluate(spec, _probabilities(spec, PREDICTED), TRUTH)
    assert m["accuracy"] == pytest.approx(0.6)  # 6 of 10 label sets exactly right
    assert m["exact_match"] == m["accuracy"]
    assert m["per_label_accuracy"] == pytest.approx(46 / 50)  # 4 wrong decisions out of 50
    assert m["per_label"]["c"]["accuracy"] == pytest.approx(0.8)  # wrong on rows 6 and 7
    assert m["per_label_accuracy"] == pytest.approx(np.mean([m["per_label"][k]["accuracy"] for k in LABELS]))


def test_multilabel_per_label_figures_and_macro_f1_are_over_the_label_columns():
    spec = LabelSpec(task="multilabel", labels=LABELS)
    probs = _probabilities(spec, PREDICTED)
    m = evaluate(spec, probs, TRUTH)
    truth, predicted = spec.indicator(TRUTH), spec.indicator(PREDICTED)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(truth, predicted, average="macro", zero_division=0))
    assert m["macro_f1"] == pytest.approx(np.mean([m["per_label"][k]["f1"] for k in LABELS]))
    b = m["per_label"]["b"]  # truth rows 1, 6; predicted rows 1, 6, 9
    assert (b["precision"], b["recall"], b["support"]) == (pytest.approx(2 / 3), 1.0, 2)
    assert b["f1"] == pytest.approx(0.8)
    assert {"accuracy", "precision", "recall", "f1", "support", "average_precision", "roc_auc"} <= set(b)


def test_an_image_with_no_labels_and_none_predicted_is_an_exact_match():
    spec = LabelSpec(task="multilabel", labels=["a", "b"])
    m = evaluate(spec, np.array([[0.1, 0.2], [0.9, 0.1]]), [(), ("a", "b")])
    assert m["accuracy"] == m["exact_match"] == 0.5 and m["per_label_accuracy"] == 0.75


def test_single_label_tasks_keep_their_accuracy_and_gain_no_multilabel_keys():
    spec = LabelSpec(task="binary", labels=["ok", "bad"])
    p_bad = np.array([0.1, 0.7, 0.8, 0.4])
    m = evaluate(spec, np.stack([1 - p_bad, p_bad], 1), [("ok",), ("ok",), ("bad",), ("bad",)])
    assert m["accuracy"] == pytest.approx(0.5)
    assert not {"exact_match", "per_label_accuracy"} & set(m) and "accuracy" not in m["per_label"]["bad"]
    assert accuracy_text(m) == "accuracy 0.5000"


def test_accuracy_text_names_exact_match_for_multilabel():
    spec = LabelSpec(task="multilabel", labels=LABELS)
    text = accuracy_text(evaluate(spec, _probabilities(spec, PREDICTED), TRUTH))
    assert text == "exact-match accuracy 0.6000 (per-label accuracy 0.9200)"
