import numpy as np
import pytest

from models.label_spec import LabelSpec, Task, infer_task


def test_binary_is_positive_at_or_above_threshold():
    spec = LabelSpec(task=Task.BINARY, labels=["ok", "defect"], thresholds={"defect": 0.3})
    assert spec.decide([0.7, 0.3]) == ["defect"]
    assert spec.decide([0.71, 0.29]) == ["ok"]


def test_multiclass_takes_argmax_or_top_k_in_score_order():
    spec = LabelSpec(task=Task.MULTICLASS, labels=["a", "b", "c"])
    assert spec.decide([0.2, 0.5, 0.3]) == ["b"]
    assert spec.decide([0.2, 0.5, 0.3], top_k=2) == ["b", "c"]


def test_multilabel_returns_every_label_over_its_threshold_possibly_none():
    spec = LabelSpec(task=Task.MULTILABEL, labels=["x", "y", "z"], thresholds={"x": 0.9, "y": 0.2})
    assert spec.decide([0.8, 0.25, 0.5]) == ["y", "z"]
    assert spec.decide([0.1, 0.1, 0.1]) == []


def test_decide_rejects_a_vector_of_the_wrong_length():
    with pytest.raises(ValueError, match="expected 2 probabilities"):
        LabelSpec(task=Task.BINARY, labels=["a", "b"]).decide([0.1, 0.2, 0.7])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="binary", labels=["a", "b", "c"]), "exactly two"),
        (dict(task="multiclass", labels=["a", "a"]), "unique"),
        (dict(task="multilabel", labels=["a;b", "c"]), "no ';'"),
        (dict(task="multilabel", labels=["a", "b"], thresholds={"q": 0.5}), "unknown labels"),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LabelSpec(**kwargs)


def test_task_is_inferred_from_label_sets():
    assert infer_task([("a",), ("b",)]) is Task.BINARY
    assert infer_task([("a",), ("b",), ("c",)]) is Task.MULTICLASS
    assert infer_task([("a", "b"), ("a",)]) is Task.MULTILABEL
    assert infer_task([(), ("a",), ("b",)]) is Task.MULTILABEL


def test_encode_gives_indices_for_single_label_and_indicators_for_multilabel():
    assert LabelSpec(task="multiclass", labels=["a", "b", "c"]).encode([("c",), ("a",)]).tolist() == [2, 0]
    y = LabelSpec(task="multilabel", labels=["a", "b"]).encode([("b",), (), ("a", "b")])
    np.testing.assert_array_equal(y, [[0, 1], [0, 0], [1, 1]])
