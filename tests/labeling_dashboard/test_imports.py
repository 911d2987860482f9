"""Imports: image folders, manifests, and batch and stream prediction outputs as pre-annotations."""

import json

import pytest

from imgclf.cli import main as imgclf
from labeling_dashboard.imports import import_paths
from labeling_dashboard.store import LabelStore
from models.errors import InvalidInput
from models.label_spec import LabelSpec
from models.prediction import PredictionRecord, csv_header
from models.registry import ModelCard
from tests.helpers import colour_image, write_csv


def _records():
    return [
        PredictionRecord(
            image_uri="a.png", labels=["red"], scores={"red": 0.9, "blue": 0.1}, model_name="m", model_version=2
        ),
        PredictionRecord(image_uri="b.png", model_name="m", model_version=2, error="not_found: no such file: b.png"),
    ]


@pytest.fixture
def store(tmp_path):
    return LabelStore(f"sqlite:///{tmp_path / 'labels.db'}")


def test_a_batch_csv_output_becomes_predictions_and_its_error_rows_images(tmp_path, capsys):
    out = write_csv(tmp_path / "predictions.csv", csv_header([]), [r.to_csv_values() for r in _records()])
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    assert imgclf(["labels", "import", str(out), "--db", db]) == 0
    assert "2 new images, 1 predictions, 0 labels, 0 bad rows" in capsys.readouterr().out
    store = LabelStore(db)
    a = store.item(str(tmp_path / "a.png"))  # relative URIs resolve against the output's folder
    assert a.revision == 0 and a.predicted_labels == ("red",)  # a prediction is not a human label
    assert store.item(str(tmp_path / "b.png")).predicted_labels is None


def test_relative_uris_resolve_against_the_folder_given(tmp_path, store):
    out = write_csv(tmp_path / "predictions.csv", csv_header([]), [r.to_csv_values() for r in _records()])
    import_paths(store, [str(out)], relative_to=str(tmp_path / "inputs"))
    assert store.item(str(tmp_path / "inputs" / "a.png")).model == "m v2"


def test_a_jsonl_output_with_a_broken_line_imports_the_rest_and_names_the_line(tmp_path, capsys):
    lines = [r.to_json() for r in _records()]
    out = tmp_path / "predictions.jsonl"
    out.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    assert imgclf(["labels", "import", str(out), "--db", db]) == 2
    printed = capsys.readouterr().out
    assert "1 predictions, 0 labels, 1 bad rows (skipped" in printed and "line 2: not JSON" in printed


def test_all_or_nothing_imports_none_of_a_file_with_a_bad_row(tmp_path, store):
    out = tmp_path / "predictions.jsonl"
    out.write_text(_records()[0].to_json() + "\n" + json.dumps({"image_uri": "c.png", "labels": []}) + "\n")
    with pytest.raises(InvalidInput, match=r"nothing imported: 1 bad rows:\n.*line 2: no 'model_name'"):
        import_paths(store, [str(out)], all_or_nothing=True)
    assert store.count() == 0


def test_a_folder_adds_its_images_once(tmp_path, capsys):
    for i, colour in enumerate(["red", "blue"]):
        (tmp_path / "imgs" / "sub").mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / "sub" / f"{colour}.png").write_bytes(colour_image(colour, i))
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    assert imgclf(["labels", "import", str(tmp_path / "imgs"), "--db", db]) == 0
    assert imgclf(["labels", "import", str(tmp_path / "imgs"), "--db", db]) == 0
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()] == ["2 new images", "0 new images"]


def test_a_gcs_prefix_adds_its_images(gcs_emulator, store):
    from models import storage

    for colour in ("red", "blue"):
        storage.write_bytes(f"gs://bucket/label-import/x/{colour}.png", colour_image(colour, 0))
    storage.write_bytes("gs://bucket/label-import/notes.txt", b"not an image")
    report = import_paths(store, ["gs://bucket/label-import"])
    assert report.images == 2
    assert {i.uri for i in store.queue()} == {
        "gs://bucket/label-import/x/red.png",
        "gs://bucket/label-import/x/blue.png",
    }


def test_a_manifest_brings_its_labels_and_splits_as_corrections_people_can_change(tmp_path, store):
    manifest = write_csv(tmp_path / "manifest.csv", ["image_uri", "labels", "split"], [["a.png", "red", "train"]])
    report = import_paths(store, [str(manifest)])
    a = store.item(str(tmp_path / "a.png"))
    assert (report.annotations, a.labels, a.split, a.annotator) == (1, ("red",), "train", "manifest:manifest.csv")
    import_paths(store, [str(manifest)])  # again: the existing labels are not touched
    assert store.item(str(tmp_path / "a.png")).revision == 1


def test_stream_window_files_are_imported_by_folder_or_glob(tmp_path, store):
    (tmp_path / "stream").mkdir()
    for n, record in enumerate(_records()):
        (tmp_path / "stream" / f"predictions-run-{n}.jsonl").write_text(record.to_json() + "\n")
    report = import_paths(store, [str(tmp_path / "stream" / "*.jsonl")])
    assert (report.images, report.predictions) == (2, 1)
    assert import_paths(store, [str(tmp_path / "stream")]).images == 0


def test_the_registered_label_spec_orders_the_queue_by_its_threshold(tmp_path, store):
    spec = LabelSpec(task="binary", labels=["cat", "dog"], thresholds={"dog": 0.3})
    card = ModelCard(name="m", version=1, label_spec=spec, image_size=32, backbone="tiny")
    (tmp_path / "registry" / "m" / "versions" / "1").mkdir(parents=True)
    (tmp_path / "registry" / "m" / "versions" / "1" / "model.json").write_text(card.model_dump_json())
    rows = [
        PredictionRecord(
            image_uri=f"{n}.png", labels=[], scores={"cat": 1 - p, "dog": p}, model_name="m", model_version=1
        )
        for n, p in (("sure", 0.99), ("unsure", 0.55), ("at_threshold", 0.3))
    ]
    out = write_csv(tmp_path / "p.csv", csv_header([]), [r.to_csv_values() for r in rows])
    import_paths(store, [str(out)], model_root=str(tmp_path / "registry"))
    # without the spec, 0.55 would look the least certain (the smallest margin)
    assert [i.uri.rsplit("/", 1)[1] for i in store.queue()] == ["at_threshold.png", "unsure.png", "sure.png"]


def test_a_file_that_is_neither_output_nor_manifest_is_refused_by_name(tmp_path, store):
    bad = write_csv(tmp_path / "x.csv", ["uri", "tag"], [["a.png", "x"]])
    with pytest.raises(InvalidInput, match="neither a prediction output"):
        import_paths(store, [str(bad)])


def test_the_stream_bigquery_table_is_imported_as_predictions(bigquery_emulator, store):
    import uuid

    from google.cloud import bigquery

    from beam_pipelines.bigquery_sink import PREDICTIONS_SCHEMA

    client = bigquery_emulator.client()
    dataset = f"labels_{uuid.uuid4().hex[:8]}"
    client.create_dataset(dataset)
    schema = [bigquery.SchemaField.from_api_repr(f) for f in PREDICTIONS_SCHEMA["fields"]]
    table = client.create_table(bigquery.Table(f"{client.project}.{dataset}.predictions", schema=schema))
    rows = [
        {
            "image_uri": "gs://b/a.png",
            "labels": ["red"],
            "scores": [{"label": "red", "score": 0.9}],
            "model_name": "m",
            "model_version": 3,
            "predicted_at": "2026-11-30T00:00:00Z",
        },
        {
            "image_uri": "gs://b/b.png",
            "labels": [],
            "scores": [],
            "model_name": "m",
            "model_version": 3,
            "error": "not_an_image: x",
            "predicted_at": "2026-11-30T00:00:00Z",
        },
    ]
    assert not client.insert_rows_json(table, rows)
    report = import_paths(store, [f"bq://{client.project}.{dataset}.predictions"])
    assert (report.images, report.predictions, report.bad_rows) == (2, 1, [])
    a = store.item("gs://b/a.png")
    assert (a.model, a.predicted_labels, a.scores) == ("m v3", ("red",), {"red": 0.9})
    assert store.item("gs://b/b.png").source.startswith("stream ")
