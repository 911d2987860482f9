from models.label_spec import LabelSpec, Task
from models.registry import ModelCard
from retraining.evaluator import EvaluationConfig, bless, how_trained


def _metrics(accuracy: float, **f1: float) -> dict:
    return {"count": 10, "accuracy": accuracy, "macro_f1": accuracy, "per_label": {k: {"f1": v} for k, v in f1.items()}}


def test_the_first_candidate_needs_only_the_floor():
    assert bless(_metrics(0.81, a=0.8), None, EvaluationConfig(floor=0.8)) == (True, [])
    blessed, reasons = bless(_metrics(0.79, a=0.8), None, EvaluationConfig(floor=0.8))
    assert not blessed and "under the floor" in reasons[0]


def test_worse_than_production_overall_or_on_one_label_is_refused():
    config = EvaluationConfig(floor=0.5, tolerance=0.01, per_label_tolerance=0.05)
    assert bless(_metrics(0.90, a=0.9, b=0.9), _metrics(0.905, a=0.9, b=0.9), config) == (True, [])
    blessed, reasons = bless(_metrics(0.90, a=0.95, b=0.80), _metrics(0.90, a=0.9, b=0.9), config)
    assert not blessed and reasons == [
        "label 'b': candidate F1 0.8000 is worse than production's 0.9000 beyond the tolerance 0.05"
    ]
    blessed, reasons = bless(_metrics(0.85, a=0.9), _metrics(0.90, a=0.9), config)
    assert not blessed and "worse than production's 0.9000" in reasons[0]


def test_a_candidate_without_test_examples_is_never_blessed():
    assert bless({"count": 0}, None, EvaluationConfig()) == (False, ["no test examples to evaluate the candidate on"])


def test_the_report_says_how_the_candidate_was_trained():
    card = ModelCard(
        name="m",
        label_spec=LabelSpec(task=Task.MULTICLASS, labels=["a", "b", "c"]),
        image_size=300,
        backbone="efficientnet_lite0",
        metrics={},
        data_fingerprint="x",
        training={
            "plan": {"rung": "fine-tune at 300 px", "budget_seconds": 1800},
            "fine_tune_epochs_run": 16,
            "tta": "flips",
            "backbone_weights": "var/backbones/cells/backbone.npz",
            "synthesis": {"counts": {"c": 200}, "steps": 3000},
        },
    )
    assert how_trained(card) == (
        "fine-tune at 300 px within a 30 min budget; 300 px, 16 fine-tuning epochs, TTA flips; "
        "backbone efficientnet_lite0 from var/backbones/cells/backbone.npz; "
        "synthetic training images {'c': 200} (3000 GAN steps)"
    )
