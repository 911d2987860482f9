"""The prediction record: one per input, the same fields in CSV, JSONL, BigQuery and the API.

Errors are records too (``error`` set, no labels), so no input is ever silently dropped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from models.errors import ImgclfError

RECORD_FIELDS = ("image_uri", "labels", "scores", "model_name", "model_version", "runtime", "predicted_at", "error")


class ErrorCode(StrEnum):
    NOT_FOUND = "not_found"
    NOT_AN_IMAGE = "not_an_image"
    TOO_LARGE = "too_large"
    DECODE_ERROR = "decode_error"
    INFERENCE_ERROR = "inference_error"
    NOT_ALLOWED = "not_allowed"  # outside the locations this run may read; says nothing about the path
    INVALID_ROW = "invalid_row"  # an input row that cannot be used (bad bytes, too many cells, ...)
    INVALID_MESSAGE = "invalid_message"  # a streamed message that is not JSON or names no image
    WRITE_ERROR = "write_error"  # a sink refused the record (BigQuery schema mismatch, table gone, ...)


class ImageError(ImgclfError):
    """An input that cannot be classified; becomes a record's ``error`` field."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self):  # pickles across Beam workers with both arguments
        return type(self), (self.code, self.message)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SourceMessage(BaseModel):
    """The Pub/Sub message a streamed record came from.

    Its id and publish time go out with the record; its payload and attributes go to the
    dead-letter output if the record fails, so nothing of the input is lost.
    """

    message_id: str
    publish_time: str | None = None
    dedup_id: str = Field(description="The message id, or the id attribute a publisher set to mark resends.")
    attributes: dict[str, str] = Field(default_factory=dict)
    payload: bytes = b""


class PredictionRecord(BaseModel):
    image_uri: str
    labels: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    model_name: str
    model_version: int
    runtime: str | None = Field(None, description="'tf' or 'openvino': what ran the model; null if it never ran.")
    predicted_at: str = Field(default_factory=utc_now)
    error: str | None = Field(None, description="'<code>: <message>', or null when classified.")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Input columns (batch) or message fields (stream) passed through unchanged.",
    )
    message: SourceMessage | None = Field(None, exclude=True, description="Streaming only: the source message.")

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_flat(self) -> dict[str, Any]:
        """Record fields then passthrough columns, renamed by ``passthrough_names`` so none is lost."""
        row: dict[str, Any] = {name: getattr(self, name) for name in RECORD_FIELDS}
        if self.message:
            row.update(message_id=self.message.message_id, publish_time=self.message.publish_time)
        for name, out in passthrough_names(list(self.extra), reserved=tuple(row)).items():
            row[out] = self.extra[name]
        return row

    def to_json(self) -> str:
        return json.dumps(self.to_flat(), ensure_ascii=False)

    def to_csv_values(self) -> list[str]:
        """CSV cells: labels ';'-joined, scores a JSON object, null as empty."""
        row = self.to_flat()
        row["labels"] = ";".join(self.labels)
        row["scores"] = json.dumps(self.scores) if self.scores else ""
        row["model_version"] = str(self.model_version)
        row["error"] = self.error or ""
        return [
            "" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in row.values()
        ]


def passthrough_names(columns: list[str], reserved: tuple[str, ...] = RECORD_FIELDS) -> dict[str, str]:
    """Output name of each input column: its own, or ``input_`` in front until it is unique.

    A column named like a record field (``labels``) becomes ``input_labels``; if the input
    also has ``input_labels``, that one keeps its name and ``labels`` becomes
    ``input_input_labels``. One-to-one, so no value is ever overwritten.
    """
    taken = set(reserved) | {c for c in columns if c not in reserved}
    names = {}
    for column in columns:
        name = column
        if column in reserved:
            name = f"input_{column}"
            while name in taken:
                name = f"input_{name}"
            taken.add(name)
        names[column] = name
    return names


def csv_header(passthrough_columns: list[str]) -> list[str]:
    return list(RECORD_FIELDS) + list(passthrough_names(passthrough_columns).values())
