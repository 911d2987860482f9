"""A dead letter keeps the original payload and says what failed, on Pub/Sub and in BigQuery."""

import base64
import json

import pytest

from beam_pipelines.bigquery_sink import full_table_spec, prediction_row
from beam_pipelines.dead_letters import DeadLetter
from models.errors import InvalidInput
from models.prediction import PredictionRecord, SourceMessage

MESSAGE = SourceMessage(
    message_id="42", publish_time="2026-11-29T12:00:00.000Z", dedup_id="42", attributes={"site": "x"}, payload=b"{..}"
)


def test_an_error_record_becomes_a_dead_letter_with_its_payload_code_and_message_id():
    record = PredictionRecord(
        image_uri="gs://b/x.jpg", model_name="m", model_version=1, error="not_found: no such file", message=MESSAGE
    )
    letter = DeadLetter.from_record(record)
    assert (letter.error_code, letter.error_message, letter.message_id) == ("not_found", "no such file", "42")
    message = letter.to_pubsub_message()
    assert message.data == b"{..}"
    assert message.attributes["site"] == "x" and message.attributes["imgclf_error_code"] == "not_found"
    row = letter.to_bigquery_row()
    assert base64.b64decode(row["payload"]) == b"{..}" and json.loads(row["attributes"]) == {"site": "x"}


def test_a_row_bigquery_refused_becomes_a_write_error_dead_letter():
    row = {"image_uri": "gs://b/x.jpg", "message_id": "42", "publish_time": None}
    letter = DeadLetter.from_refused_row(("p:d.t", row, [{"reason": "invalid", "message": "no such field: x"}]))
    assert letter.error_code == "write_error" and "no such field: x" in letter.error_message
    assert json.loads(letter.payload) == row


def test_long_error_messages_fit_pubsub_attribute_limits():
    record = PredictionRecord(image_uri="x", model_name="m", model_version=1, error="decode_error: " + "é" * 2000)
    attributes = DeadLetter.from_record(record).to_pubsub_message().attributes
    assert all(len(v.encode()) <= 1024 for v in attributes.values())


def test_a_prediction_row_has_repeated_scores_latency_and_passthrough_json():
    record = PredictionRecord(
        image_uri="gs://b/x.jpg",
        labels=["cat"],
        scores={"cat": 0.9, "dog": 0.1},
        model_name="m",
        model_version=3,
        predicted_at="2026-11-29T12:00:01.500Z",
        extra={"camera": 7},
        message=MESSAGE,
    )
    row = prediction_row(record)
    assert row["scores"] == [{"label": "cat", "score": 0.9}, {"label": "dog", "score": 0.1}]
    assert row["latency_ms"] == 1500.0 and json.loads(row["passthrough"]) == {"camera": 7}
    assert (row["message_id"], row["model_version"]) == ("42", 3)


def test_table_specs_are_completed_with_the_project_or_refused():
    assert full_table_spec("ds.t", "proj") == "proj:ds.t"
    assert full_table_spec("other-proj:ds.t", "proj") == "other-proj:ds.t"
    for bad in ("t", "ds.t"):
        with pytest.raises(InvalidInput):
            full_table_spec(bad, None)
