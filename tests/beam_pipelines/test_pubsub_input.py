"""Pub/Sub messages become rows: a JSON message names an image, an image message is one, anything else is an error row."""

import json
from datetime import UTC, datetime

from apache_beam.io.gcp.pubsub import PubsubMessage

from beam_pipelines.pubsub_input import to_input_row
from models.prediction import ErrorCode

PUBLISHED = datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)


def _message(data: bytes, attributes=None, message_id="m-1") -> PubsubMessage:
    return PubsubMessage(data, attributes or {}, message_id=message_id, publish_time=PUBLISHED)


def test_a_json_message_names_the_image_and_its_other_fields_pass_through():
    row = to_input_row(_message(json.dumps({"image_uri": "gs://b/cat.jpg", "camera": 7, "site": "x"}).encode()))
    assert (row.image_uri, row.read_uri, row.error) == ("gs://b/cat.jpg", "gs://b/cat.jpg", None)
    assert row.extra == {"camera": 7, "site": "x"}
    assert (row.message.message_id, row.message.publish_time) == ("m-1", "2026-11-29T12:00:00.123Z")


def test_an_image_message_carries_the_image_and_its_attributes_pass_through():
    row = to_input_row(
        _message(b"\x89PNG...", {"content-type": "image/png", "image_uri": "cam1/0001.png", "site": "x"})
    )
    assert (row.image_uri, row.content, row.extra) == ("cam1/0001.png", b"\x89PNG...", {"site": "x"})
    unnamed = to_input_row(_message(b"\xff\xd8", {"content-type": "image/jpeg"}, message_id="m-9"))
    assert unnamed.image_uri == "pubsub-message:m-9"


def test_messages_that_name_no_image_are_invalid_message_rows_that_keep_their_payload():
    cases = {
        b"not json": "not JSON",
        b"[1, 2]": "a JSON list",
        json.dumps({"uri": "gs://b/x.jpg"}).encode(): "no 'image_uri'",
        json.dumps({"image_uri": "  "}).encode(): "no 'image_uri'",
        b"\xff\xfe\x00": "not JSON",
    }
    for payload, reason in cases.items():
        row = to_input_row(_message(payload))
        assert row.error.code is ErrorCode.INVALID_MESSAGE and reason in row.error.message, payload
        assert row.message.payload == payload


def test_the_id_attribute_marks_a_resend_as_the_same_message():
    first = to_input_row(_message(b'{"image_uri": "a.png"}', {"event": "e-1"}, message_id="1"), "event")
    resent = to_input_row(_message(b'{"image_uri": "a.png"}', {"event": "e-1"}, message_id="2"), "event")
    assert first.message.dedup_id == resent.message.dedup_id == "e-1"
    assert "event" not in first.extra  # JSON fields pass through, attributes of JSON messages do not
    assert to_input_row(_message(b'{"image_uri": "a.png"}', message_id="3")).message.dedup_id == "3"
