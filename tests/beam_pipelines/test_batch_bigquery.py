"""Batch results can land in BigQuery: one row per CSV row, error rows included."""

import uuid

from beam_pipelines import batch
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
