"""Prediction records into BigQuery, for the stream and for batch (``--output_table``).

The table (docs/streaming.md has it in full) is created if missing, partitioned by day
on ``predicted_at``. Rows go in through Beam's BigQuery writers:

- ``STREAMING_INSERTS`` (default): Beam's own insert DoFn (``BigQueryWriteFn``, with its
  retries and its failed-rows output), fed rows whose insert id is the source message's
  id, so BigQuery's best-effort deduplication also drops a redelivered message. Beam's
  ``WriteToBigQuery`` would give every row a random id, which only covers its own retries.
- ``STORAGE_WRITE_API`` and ``FILE_LOADS``: ``WriteToBigQuery`` as it is (exactly-once
  on Dataflow for the Storage Write API; insert ids do not apply).

Whatever BigQuery refuses comes back out as ``(table, row, errors)``, for the dead-letter
output: a refused row is never dropped.
"""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from datetime import datetime

import apache_beam as beam
from apache_beam.io.gcp import bigquery
from apache_beam.io.gcp.bigquery_tools import RetryStrategy
from apache_beam.transforms.util import ReshufflePerKey

from models.errors import InvalidInput
from models.prediction import PredictionRecord

log = logging.getLogger("imgclf.bigquery")

STREAMING_INSERTS = "STREAMING_INSERTS"
STORAGE_WRITE_API = "STORAGE_WRITE_API"
FILE_LOADS = "FILE_LOADS"
METHODS = (STREAMING_INSERTS, STORAGE_WRITE_API, FILE_LOADS)


def _field(name: str, kind: str, mode: str = "NULLABLE", description: str = "", fields=None) -> dict:
    out = {"name": name, "type": kind, "mode": mode, "description": description}
    if fields:
        out["fields"] = fields
    return out


PREDICTIONS_SCHEMA = {
    "fields": [
        _field("image_uri", "STRING", "REQUIRED", "The image as named in the input."),
        _field("labels", "STRING", "REPEATED", "Predicted labels (empty when error is set)."),
        _field(
            "scores",
            "RECORD",
            "REPEATED",
            "Probability of every label of the model version.",
            [_field("label", "STRING", "REQUIRED"), _field("score", "FLOAT", "REQUIRED")],
        ),
        _field("model_name", "STRING", "REQUIRED"),
        _field("model_version", "INTEGER", "REQUIRED", "The version that produced this row."),
        _field("runtime", "STRING", description="What ran the model: 'tf' or 'openvino' (null for an error row)."),
        _field("error", "STRING", description="'<code>: <message>', or null when classified."),
        _field("message_id", "STRING", description="Pub/Sub message id (stream only)."),
        _field("publish_time", "TIMESTAMP", description="When the message was published (stream only)."),
        _field("predicted_at", "TIMESTAMP", "REQUIRED", "When the prediction was made; the partitioning column."),
        _field("latency_ms", "FLOAT", description="publish_time to predicted_at, in milliseconds (stream only)."),
        _field("passthrough", "JSON", description="The input's other CSV columns or message fields."),
    ]
}
PARTITIONING = {"timePartitioning": {"type": "DAY", "field": "predicted_at"}}


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def prediction_row(record: PredictionRecord) -> dict:
    """A record as a row of PREDICTIONS_SCHEMA."""
    message = record.message
    published = message.publish_time if message else None
    latency = None
    if published:
        latency = round((_parse_time(record.predicted_at) - _parse_time(published)).total_seconds() * 1000, 1)
    return {
        "image_uri": record.image_uri,
        "labels": list(record.labels),
        "scores": [{"label": label, "score": score} for label, score in record.scores.items()],
        "model_name": record.model_name,
        "model_version": record.model_version,
        "runtime": record.runtime,
        "error": record.error,
        "message_id": message.message_id if message else None,
        "publish_time": published,
        "predicted_at": record.predicted_at,
        "latency_ms": latency,
        "passthrough": json.dumps(record.extra, ensure_ascii=False) if record.extra else None,
    }


def insert_id(record: PredictionRecord) -> str:
    """The source message's id (or the publisher's id attribute); a fresh one for batch rows."""
    return record.message.dedup_id if record.message else uuid.uuid4().hex


class _FixedShard(beam.DoFn):
    def __init__(self, shards: int):
        self.shards = shards

    def process(self, element):
        table, row = element
        yield (table, random.randrange(self.shards)), row


class WriteRowsToBigQuery(beam.PTransform):
    """``(row, insert_id)`` pairs -> ``table``; returns ``(table, row, errors)`` for every refused row."""

    def __init__(
        self,
        table: str,
        schema: dict,
        *,
        method: str = STREAMING_INSERTS,
        additional_bq_parameters: dict | None = None,
        batch_size: int = 500,
        max_retries: int = 3,
        triggering_frequency_s: int | None = None,
        shards: int = 4,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"BigQuery write method must be one of {METHODS}, got {method!r}")
        self.table, self.schema, self.method = table, schema, method
        self.additional = additional_bq_parameters or {}
        self.batch_size, self.max_retries = batch_size, max_retries
        self.triggering_frequency_s, self.shards = triggering_frequency_s, shards

    def expand(self, pairs):
        if self.method != STREAMING_INSERTS:
            result = (
                pairs
                | "Rows" >> beam.Keys()
                | "Write"
                >> bigquery.WriteToBigQuery(
                    self.table,
                    schema=self.schema,
                    method=self.method,
                    create_disposition=bigquery.BigQueryDisposition.CREATE_IF_NEEDED,
                    write_disposition=bigquery.BigQueryDisposition.WRITE_APPEND,
                    additional_bq_parameters=self.additional,
                    triggering_frequency=self.triggering_frequency_s,
                )
            )
            return result.failed_rows_with_errors
        insert = bigquery.BigQueryWriteFn(
            batch_size=self.batch_size,
            schema=self.schema,
            create_disposition=bigquery.BigQueryDisposition.CREATE_IF_NEEDED,
            write_disposition=bigquery.BigQueryDisposition.WRITE_APPEND,
            retry_strategy=RetryStrategy.RETRY_ON_TRANSIENT_ERROR,
            additional_bq_parameters=self.additional,
            max_retries=self.max_retries,
        )
        written = (
            pairs
            | "ToTable" >> beam.Map(lambda pair, table: (table, pair), self.table)
            | "Shard" >> beam.ParDo(_FixedShard(self.shards))
            | "CommitInsertIds" >> ReshufflePerKey()  # a retried bundle re-sends the same ids
            | "DropShard" >> beam.Map(lambda kv: (kv[0][0], kv[1]))
            | "StreamInsert"
            >> beam.ParDo(insert).with_outputs(
                bigquery.BigQueryWriteFn.FAILED_ROWS, bigquery.BigQueryWriteFn.FAILED_ROWS_WITH_ERRORS, main="main"
            )
        )
        return written[bigquery.BigQueryWriteFn.FAILED_ROWS_WITH_ERRORS]


class WritePredictionsToBigQuery(beam.PTransform):
    """PredictionRecords -> the predictions table; returns the refused rows, as WriteRowsToBigQuery."""

    def __init__(self, table: str, method: str = STREAMING_INSERTS, **options):
        super().__init__()
        self.table, self.method, self.options = table, method, options

    def expand(self, records):
        return (
            records
            | "ToRows" >> beam.Map(lambda r: (prediction_row(r), insert_id(r)))
            | "Write"
            >> WriteRowsToBigQuery(
                self.table,
                PREDICTIONS_SCHEMA,
                method=self.method,
                additional_bq_parameters=PARTITIONING,
                **self.options,
            )
        )


_TABLE_SPEC = re.compile(
    r"^(?:(?P<project>[a-z][a-z0-9.:-]{3,62}[a-z0-9]):)?(?P<dataset>\w{1,1024})\.(?P<table>[\w$-]{1,1024})$"
)


def full_table_spec(spec: str, project: str | None) -> str:
    """``PROJECT:DATASET.TABLE`` from that or ``DATASET.TABLE`` plus ``--project``; InvalidInput otherwise."""
    match = _TABLE_SPEC.match(spec.strip())
    if not match:
        raise InvalidInput(f"BigQuery table {spec!r} is not PROJECT:DATASET.TABLE or DATASET.TABLE")
    project = match["project"] or project
    if not project:
        raise InvalidInput(f"BigQuery table {spec!r} names no project: write PROJECT:{spec} or pass --project")
    return f"{project}:{match['dataset']}.{match['table']}"


def ensure_dataset(table_spec: str) -> None:
    """Creates the table's dataset if missing: Beam creates tables, not datasets."""
    from google.api_core import exceptions

    from models import bigquery as bq

    project, rest = table_spec.split(":", 1)
    dataset = rest.split(".", 1)[0]
    client = bq.client(project)
    try:
        client.get_dataset(f"{project}.{dataset}")
    except exceptions.NotFound:
        client.create_dataset(f"{project}.{dataset}", exists_ok=True)


def ensure_columns(table_spec: str, schema: dict) -> list[str]:
    """Adds ``schema``'s missing nullable columns to an existing table and returns their names.

    A table made by an earlier imgclf lacks the columns added since (``runtime``, issue 12), and BigQuery
    would refuse every row naming one. Adding a nullable column changes no existing row; a missing
    REQUIRED column cannot be added, and is an error that names it. A table that does not exist yet is
    left to the sink, which creates it whole.
    """
    from google.api_core import exceptions
    from google.cloud.bigquery import SchemaField

    from models import bigquery as bq

    project, rest = table_spec.split(":", 1)
    client = bq.client(project)
    try:
        table = client.get_table(f"{project}.{rest}")
    except exceptions.NotFound:
        return []
    have = {field.name for field in table.schema}
    missing = [SchemaField.from_api_repr(f) for f in schema["fields"] if f["name"] not in have]
    if not missing:
        return []
    required = [f.name for f in missing if f.mode == "REQUIRED"]
    if required:
        raise InvalidInput(
            f"BigQuery table {table_spec} lacks required column(s) {', '.join(required)}, which cannot be added "
            "to an existing table: write to a new table, or copy this one into one made with the current schema"
        )
    table.schema = [*table.schema, *missing]
    client.update_table(table, ["schema"])
    names = [f.name for f in missing]
    log.warning("BigQuery table %s: added the nullable column(s) %s", table_spec, ", ".join(names))
    return names
