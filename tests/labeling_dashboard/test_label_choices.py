"""The labels on offer and the control that fits their number and the task."""

import pytest

from labeling_dashboard.label_choices import LabelChoices, label_choices
from models.errors import InvalidInput
from models.label_spec import LabelSpec, Task
from tests.labeling_dashboard.test_app import write_card


def _choices(task, n):
    return LabelChoices(task, tuple(f"l{i}" for i in range(n)), "test")


@pytest.mark.parametrize(
    ("task", "n", "control"),
    [
        (Task.BINARY, 2, "buttons"),
        (Task.MULTICLASS, 9, "buttons"),
        (Task.MULTICLASS, 10, "radio"),
        (Task.MULTICLASS, 31, "multiselect"),
        (Task.MULTILABEL, 9, "toggles"),
        (Task.MULTILABEL, 1000, "multiselect"),
    ],
)
def test_the_control_fits_the_number_of_labels(task, n, control):
    assert _choices(task, n).control == control


def test_labels_outside_the_choices_or_several_for_single_label_are_refused_by_name():
    choices = _choices(Task.MULTICLASS, 3)
    assert choices.check(["l1"]) == ["l1"]
    with pytest.raises(InvalidInput, match="'rust' is not a label"):
        choices.check(["rust"])
    with pytest.raises(InvalidInput, match="exactly one label"):
        choices.check(["l1", "l2"])


def test_the_production_spec_plus_added_labels_else_the_labels_seen(tmp_path):
    write_card(tmp_path / "reg", "m", LabelSpec(task="multilabel", labels=["a", "b"]))
    choices = label_choices(str(tmp_path / "reg"), None, ["c"], ["zzz"])
    assert (choices.task, choices.labels) == (Task.MULTILABEL, ("a", "b", "c"))
    empty = label_choices(str(tmp_path / "none"), None, ["c"], ["x", "y"])
    assert (empty.task, empty.labels) == (Task.MULTICLASS, ("x", "y", "c"))
