"""Batch results can land in BigQuery: one row per CSV row, error rows included; an older table gains new columns."""

import uuid

import pytest
from google.cloud import bigquery

from beam_pipelines import batch
from beam_pipelines.bigquery_sink import PREDICTIONS_SCHEMA, ensure_columns
from models.errors import InvalidInput
from tests.helpers import colour_image, write_csv


def test_batch_writes_every_record_to_the_bigquery_table(tmp_path, trained_registry, bigquery_emulator):
    (tmp_path / "red.png").write_bytes(colour_image("red", 1))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    csv_in = write_csv(
        tmp_path / "in.csv", ["image_uri", "id"], [["red.png", "1"], ["broken.png", "2"], ["gone.png", "3"]]
    )
    table = f"test-proj:batch_{uuid.uuid4().hex[:8]}.predictions"
    code = batch.run([f"--input={csv_in}", f"--output_table={table}", f"--model_root={trained_registry}"])
    assert code == 0
    rows = {
        r["image_uri"]: r
        for r in bigquery_emulator.client().query(f"SELECT * FROM `{table.replace(':', '.')}`").result()
    }
    assert set(rows) == {"red.png", "broken.png", "gone.png"}
    assert rows["red.png"]["labels"] == ["red"] and rows["red.png"]["passthrough"] == {"id": "1"}
    assert rows["gone.png"]["error"].startswith("not_found") and rows["broken.png"]["error"]
    assert all(r["message_id"] is None and r["model_version"] == 1 for r in rows.values())


def test_a_table_from_before_a_new_column_gets_it_added_and_keeps_its_rows(bigquery_emulator):
    client = bigquery_emulator.client()
    table_id = f"test-proj.old_{uuid.uuid4().hex[:8]}.predictions"
    client.create_dataset(table_id.rsplit(".", 1)[0])
    old = [f for f in PREDICTIONS_SCHEMA["fields"] if f["name"] != "runtime"]
    client.create_table(bigquery.Table(table_id, schema=[bigquery.SchemaField.from_api_repr(f) for f in old]))
    spec = table_id.replace(".", ":", 1)

    assert ensure_columns(spec, PREDICTIONS_SCHEMA) == ["runtime"]

    columns = {f.name: f for f in client.get_table(table_id).schema}
    assert set(columns) == {f["name"] for f in PREDICTIONS_SCHEMA["fields"]} and columns["runtime"].mode == "NULLABLE"
    assert ensure_columns(spec, PREDICTIONS_SCHEMA) == []  # once is enough


def test_a_missing_required_column_is_refused_by_name(bigquery_emulator):
    client = bigquery_emulator.client()
    table_id = f"test-proj.old_{uuid.uuid4().hex[:8]}.predictions"
    client.create_dataset(table_id.rsplit(".", 1)[0])
    client.create_table(bigquery.Table(table_id, schema=[bigquery.SchemaField("image_uri", "STRING", "REQUIRED")]))

    with pytest.raises(InvalidInput, match="model_name, model_version, predicted_at"):
        ensure_columns(table_id.replace(".", ":", 1), PREDICTIONS_SCHEMA)
    assert [f.name for f in client.get_table(table_id).schema] == ["image_uri"]  # nothing half-added
