"""The blessing compares multilabel models on exact match, not on the flattering per-label accuracy."""

import numpy as np
import pytest

from models.evaluation import evaluate
from models.label_spec import LabelSpec
from models.registry import ModelCard
from retraining.evaluator import Evaluation, EvaluationConfig, _html, bless

LABELS = ["a", "b", "c", "d"]
TRUTH = [("a",), ("b",), ("c",), ("d",), ("a", "b"), ("c", "d"), (), ("a",), ("b", "c"), ("d",)]
# Production gets 7 of 10 label sets right, with 3 wrong decisions on each of the other 3 images:
# exact match 0.7, per-label accuracy 31/40 = 0.775.
PRODUCTION = [
    ("a",),
    ("b",),
    ("c",),
    ("d",),
    ("a", "b"),
    ("c", "d"),
    ("a", "b", "c"),
    ("a", "b", "c", "d"),
    ("b", "c"),
    ("a", "b", "c", "d"),
]
# The candidate misses one label on each of 5 images: exact match 0.5, per-label accuracy 35/40 = 0.875.
CANDIDATE = [("a",), ("b",), ("c",), ("d",), ("a", "b"), ("c",), ("a",), (), ("b",), ()]


def _metrics(predicted) -> dict:
    spec = LabelSpec(task="multilabel", labels=LABELS)
    return evaluate(spec, 0.1 + 0.8 * spec.indicator(predicted).astype(np.float64), TRUTH)


def test_the_fixture_is_better_per_label_and_worse_on_exact_match():
    candidate, production = _metrics(CANDIDATE), _metrics(PRODUCTION)
    assert (candidate["accuracy"], candidate["per_label_accuracy"]) == (pytest.approx(0.5), pytest.approx(0.875))
    assert (production["accuracy"], production["per_label_accuracy"]) == (pytest.approx(0.7), pytest.approx(0.775))


def test_a_candidate_better_per_label_but_worse_on_exact_match_is_not_blessed():
    config = EvaluationConfig(floor=0.0, tolerance=0.01, per_label_tolerance=1.0)  # only the overall metric
    blessed, reasons = bless(_metrics(CANDIDATE), _metrics(PRODUCTION), config)
    assert not blessed
    assert reasons == [
        "candidate exact-match accuracy 0.5000 is worse than production's 0.7000 beyond the tolerance 0.01"
    ]
    assert bless(_metrics(PRODUCTION), _metrics(CANDIDATE), config) == (True, [])


def test_the_floor_applies_to_exact_match():
    blessed, reasons = bless(_metrics(CANDIDATE), None, EvaluationConfig(floor=0.6))
    assert not blessed and reasons == ["candidate exact-match accuracy 0.5000 is under the floor 0.6000"]


def test_the_report_names_exact_match_and_shows_per_label_accuracy():
    spec = LabelSpec(task="multilabel", labels=LABELS)
    card = ModelCard(name="m", label_spec=spec, image_size=32, backbone="small_cnn")
    candidate, production = _metrics(CANDIDATE), _metrics(PRODUCTION)
    config = EvaluationConfig(floor=0.0, per_label_tolerance=1.0)
    blessed, reasons = bless(candidate, production, config)
    result = Evaluation(
        candidate=candidate, production=production, production_version=1, blessed=blessed, reasons=reasons, files={}
    )
    page = _html(card, result, config)
    assert "exact-match accuracy: candidate 0.5000, production 0.7000" in page
    assert "per-label accuracy (not compared): candidate 0.8750, production 0.7750" in page
    assert "<th>candidate accuracy</th>" in page
