from models.label_spec import LabelSpec
from retraining.validation import ValidationConfig, validate


def _stats(train: dict[str, int], width: float = 100, test: int = 5, unreadable: int = 0) -> dict:
    split = lambda counts, n: {  # noqa: E731
        "examples": n,
        "label_counts": counts,
        "width": {"mean": width},
        "height": {"mean": width},
    }
    return {
        "unreadable": unreadable,
        "splits": {"train": split(train, sum(train.values())), "validation": split({}, 5), "test": split({}, test)},
    }


SPEC = LabelSpec(task="binary", labels=["ok", "bad"])


def test_clean_data_passes():
    report = validate(_stats({"ok": 30, "bad": 20}), SPEC, ValidationConfig())
    assert report.ok and not report.warnings


def test_an_unknown_label_is_an_error_that_names_it_unless_allowed():
    report = validate(_stats({"ok": 30, "bad": 20, "cracked": 7}), SPEC, ValidationConfig())
    assert not report.ok and "unknown label 'cracked' (7 examples)" in report.errors[0]
    allowed = validate(_stats({"ok": 30, "bad": 20, "cracked": 7}), SPEC, ValidationConfig(allow_new_labels=True))
    assert allowed.ok and "new labels ['cracked']" in allowed.warnings[0]


def test_a_label_an_admin_added_in_the_label_store_is_accepted_as_new():
    report = validate(_stats({"ok": 30, "bad": 20, "cracked": 7}), SPEC, ValidationConfig(), added_labels=["cracked"])
    assert report.ok and "labels ['cracked'], added in the label store" in report.warnings[0]


def test_too_few_examples_fail_and_imbalance_warns():
    report = validate(_stats({"ok": 300, "bad": 3}, test=1), SPEC, ValidationConfig())
    assert any("'bad' has 3 training examples" in e for e in report.errors)
    assert any("test split has 1 examples" in e for e in report.errors)
    assert any("imbalance 100.0:1" in w for w in report.warnings)


def test_drift_against_the_last_run_is_reported():
    before, now = _stats({"ok": 50, "bad": 50}), _stats({"ok": 80, "bad": 20}, width=200)
    report = validate(now, SPEC, ValidationConfig(), previous=before)
    assert report.ok
    assert report.drift["label_share_change"] == {"bad": -0.3, "ok": 0.3}
    assert report.drift["mean_width_change"] == 1.0
    assert len(report.warnings) == 4  # two label shares, width, height
