"""Pub/Sub messages -> InputRows: a JSON message names an image, an image message is one.

Two message shapes (docs/streaming.md):

- JSON ``{"image_uri": "gs://b/cat.jpg", ...}``; the other fields pass through to the
  record, like extra CSV columns in batch;
- the image bytes themselves, with the attribute ``content-type: image/...``; the optional
  attribute ``image_uri`` names it in the output, the other attributes pass through.

A message that is neither becomes a row with an ``invalid_message`` error, never an
exception: it goes on to the dead-letter output with its payload.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.transforms.deduplicate import DeduplicatePerKey
from apache_beam.utils.timestamp import Duration

from beam_pipelines.input_row import InputRow
from models.prediction import ErrorCode, ImageError, SourceMessage

CONTENT_TYPE = "content-type"
IMAGE_URI = "image_uri"


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def source_message(message: PubsubMessage, id_attribute: str = "") -> SourceMessage:
    attributes = dict(message.attributes or {})
    message_id = message.message_id or f"unidentified-{uuid.uuid4().hex}"  # never deduplicated together
    return SourceMessage(
        message_id=message_id,
        publish_time=_iso(message.publish_time),
        dedup_id=(attributes.get(id_attribute) if id_attribute else None) or message_id,
        attributes=attributes,
        payload=message.data or b"",
    )


def to_input_row(message: PubsubMessage, id_attribute: str = "") -> InputRow:
    """One message as one row; a message that names no image is a row with its error."""
    source = source_message(message, id_attribute)
    attributes = source.attributes
    if attributes.get(CONTENT_TYPE, "").lower().startswith("image/"):
        name = attributes.get(IMAGE_URI) or f"pubsub-message:{source.message_id}"
        extra = {k: v for k, v in attributes.items() if k not in (CONTENT_TYPE, IMAGE_URI, id_attribute)}
        return InputRow(name, "", extra, content=source.payload, message=source)

    def invalid(reason: str) -> InputRow:
        return InputRow("", "", error=ImageError(ErrorCode.INVALID_MESSAGE, reason), message=source)

    try:
        body = json.loads(source.payload)
    except ValueError as e:  # UnicodeDecodeError is one too
        return invalid(f"not JSON and no '{CONTENT_TYPE}: image/...' attribute ({type(e).__name__})")
    if not isinstance(body, dict):
        return invalid(f"a JSON {type(body).__name__}, not an object with '{IMAGE_URI}'")
    uri = body.get(IMAGE_URI)
    if not isinstance(uri, str) or not uri.strip():
        return invalid(f"no '{IMAGE_URI}' string in the message")
    extra = {k: v for k, v in body.items() if k != IMAGE_URI}
    return InputRow(uri, uri.strip(), extra, message=source)


class ParseMessages(beam.PTransform):
    """PubsubMessages -> InputRows, each message once.

    A message delivered again (Pub/Sub is at-least-once; a publisher may resend with the
    same id attribute) is dropped here when its ``dedup_id`` was seen within
    ``dedup_window_s``, before it costs an inference or makes a second output row.
    """

    def __init__(self, id_attribute: str = "", dedup_window_s: float = 600.0):
        super().__init__()
        self.id_attribute, self.dedup_window_s = id_attribute, dedup_window_s

    def expand(self, messages):
        rows = messages | "ToRows" >> beam.Map(to_input_row, self.id_attribute)
        if not self.dedup_window_s:
            return rows
        return (
            rows
            | "KeyByMessage" >> beam.Map(lambda row: (row.message.dedup_id, row))
            | "DropRedeliveries" >> DeduplicatePerKey(processing_time_duration=Duration(seconds=self.dedup_window_s))
            | "Unkey" >> beam.Values()
        )
