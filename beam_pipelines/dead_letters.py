"""Dead letters: every message the stream could not turn into a prediction row.

A dead letter keeps the original payload and attributes, the error code and message, and
the message id, so it can be inspected and published again. It goes to a Pub/Sub topic
(the payload as the message data, the rest as attributes) and/or a BigQuery table.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field

from apache_beam.io.gcp.pubsub import PubsubMessage

from beam_pipelines.bigquery_sink import _field
from models.prediction import ErrorCode, PredictionRecord, utc_now

_ATTRIBUTE_LIMIT = 1024  # Pub/Sub's limit on an attribute value, in bytes

DEAD_LETTER_SCHEMA = {
    "fields": [
        _field("message_id", "STRING", description="The source message's id."),
        _field("publish_time", "TIMESTAMP"),
        _field("image_uri", "STRING", description="The image the message named, if any."),
        _field("error_code", "STRING", "REQUIRED", "invalid_message, not_found, decode_error, write_error, ..."),
        _field("error_message", "STRING", "REQUIRED"),
        _field("payload", "BYTES", description="The message data as received (or the row a sink refused)."),
        _field("attributes", "JSON", description="The message attributes as received."),
        _field("failed_at", "TIMESTAMP", "REQUIRED"),
    ]
}
DEAD_LETTER_PARTITIONING = {"timePartitioning": {"type": "DAY", "field": "failed_at"}}


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    publish_time: str | None
    image_uri: str
    error_code: str
    error_message: str
    payload: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    failed_at: str = field(default_factory=utc_now)

    @classmethod
    def from_record(cls, record: PredictionRecord) -> DeadLetter:
        """An error record; its error reads '<code>: <message>'."""
        code, _, text = (record.error or "").partition(": ")
        message = record.message
        return cls(
            message_id=message.message_id if message else None,
            publish_time=message.publish_time if message else None,
            image_uri=record.image_uri,
            error_code=code,
            error_message=text or code,
            payload=message.payload if message else json.dumps(record.to_flat()).encode(),
            attributes=dict(message.attributes) if message else {},
        )

    @classmethod
    def from_refused_row(cls, refused: tuple) -> DeadLetter:
        """A row BigQuery refused, as ``(table, row, errors)`` from the sink."""
        table, row, errors = refused
        reasons = "; ".join(sorted({str(e.get("message") or e.get("reason") or e) for e in errors or []}))
        return cls(
            message_id=row.get("message_id"),
            publish_time=row.get("publish_time"),
            image_uri=row.get("image_uri") or "",
            error_code=ErrorCode.WRITE_ERROR.value,
            error_message=f"{table} refused the row: {reasons or 'no reason given'}"[:2000],
            payload=json.dumps(row, ensure_ascii=False, default=str).encode(),
        )

    def insert_id(self) -> str:
        """One dead letter per message, where BigQuery honours insert ids; a fresh id without one."""
        return f"dead-{self.message_id}" if self.message_id else f"dead-{uuid.uuid4().hex}"

    def to_bigquery_row(self) -> dict:
        return {
            "message_id": self.message_id,
            "publish_time": self.publish_time,
            "image_uri": self.image_uri,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "attributes": json.dumps(self.attributes, ensure_ascii=False),
            "failed_at": self.failed_at,
        }

    def to_pubsub_message(self) -> PubsubMessage:
        """The original data and attributes, plus ``imgclf_*`` attributes saying what failed."""
        extra = {
            "imgclf_error_code": self.error_code,
            "imgclf_error": self.error_message,
            "imgclf_message_id": self.message_id or "",
            "imgclf_image_uri": self.image_uri,
            "imgclf_failed_at": self.failed_at,
        }
        clipped = {k: v.encode()[:_ATTRIBUTE_LIMIT].decode(errors="ignore") for k, v in extra.items() if v}
        return PubsubMessage(self.payload, {**self.attributes, **clipped})
