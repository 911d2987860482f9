"""The review order: the image whose label would help most comes first."""

from labeling_dashboard.priority import uncertainty
from models.label_spec import LabelSpec


def test_binary_is_closeness_to_the_positive_threshold():
    spec = LabelSpec(task="binary", labels=["ok", "bad"], thresholds={"bad": 0.2})
    assert uncertainty({"ok": 0.8, "bad": 0.2}, spec) == 1.0
    assert uncertainty({"ok": 0.0, "bad": 1.0}, spec) == 0.0
    assert uncertainty({"ok": 0.9, "bad": 0.1}, spec) == 0.5  # half the room below 0.2


def test_multiclass_is_one_minus_the_top_two_margin():
    spec = LabelSpec(task="multiclass", labels=["a", "b", "c"])
    assert uncertainty({"a": 0.4, "b": 0.35, "c": 0.25}, spec) == 0.95
    assert uncertainty({"a": 0.98, "b": 0.01, "c": 0.01}, spec) < 0.05


def test_multilabel_is_the_label_nearest_its_threshold():
    spec = LabelSpec(task="multilabel", labels=["x", "y"], thresholds={"x": 0.5, "y": 0.7})
    assert uncertainty({"x": 0.99, "y": 0.69}, spec) > 0.95
    assert uncertainty({"x": 0.99, "y": 0.01}, spec) < 0.05


def test_without_a_spec_the_scores_decide_and_an_unseen_image_comes_first():
    assert uncertainty({}) == 1.0
    assert uncertainty({"a": 0.5, "b": 0.5}) == 1.0  # sums to one: a margin of 0
    assert uncertainty({"a": 0.5, "b": 0.99}) == 1.0  # independent scores: a is on the 0.5 line
