"""The prediction record's output columns: input columns never overwrite a field or each other."""

from hypothesis import given
from hypothesis import strategies as st

from models.prediction import RECORD_FIELDS, PredictionRecord, csv_header, passthrough_names

_names = st.lists(st.sampled_from([*RECORD_FIELDS, "id", "input_labels", "input_input_labels", "x"]), unique=True)


@given(_names)
def test_passthrough_names_are_one_to_one_and_never_a_record_field(columns):
    names = passthrough_names(columns)
    assert list(names) == columns
    assert len(set(names.values())) == len(columns)
    assert not set(names.values()) & set(RECORD_FIELDS)
    assert len(set(csv_header(columns))) == len(RECORD_FIELDS) + len(columns)


def test_every_input_value_reaches_the_output_row():
    extra = {"labels": "truth", "input_labels": "other", "error": "e", "id": "7"}
    row = PredictionRecord(image_uri="a.png", model_name="m", model_version=1, extra=extra).to_flat()
    assert (row["input_input_labels"], row["input_labels"], row["input_error"], row["id"]) == (
        "truth",
        "other",
        "e",
        "7",
    )
    assert row["labels"] == [] and row["error"] is None
