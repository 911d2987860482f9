"""The Trainer reads ExampleGen's TFRecords through TFXIO, from a folder or from gs:// (the GCS emulator)."""

import html

from models import storage
from models.registry import ModelRegistry
from retraining.lineage import LineageStore
from retraining.pipeline import RetrainConfig, run_once
from retraining.trainer import read_examples
from tests.helpers import write_split_colour_manifest
from tests.retraining.test_pipeline import TRAINER


def test_a_run_with_examples_on_gcs_and_synthetic_images_records_both(tmp_path, gcs_emulator):
    manifest, rows = write_split_colour_manifest(tmp_path)
    config = RetrainConfig(
        model_name="rb",
        manifest=str(manifest),
        model_root=str(tmp_path / "models"),
        work_dir=str(tmp_path / "work"),
        examples_root="gs://bucket/trainer-test/examples",
        trainer={  # GAN images for red too: the trainer takes every train parameter, and the card says so
            **TRAINER,
            "labels": ["red", "blue"],
            "synthetic": {"red": 4},
            "gan": {"image_size": 16, "steps": 3, "batch_size": 8},
        },
        evaluation={"floor": 0.5},
    )
    summary = run_once(config)
    assert summary.status == "succeeded" and summary.pushed_version == 1, summary.reasons
    assert summary.counts == {"train": 16, "validation": 4, "test": 4, "unreadable": 0}
    shards = storage.list_files("gs://bucket/trainer-test/examples/run-1/train/*.tfrecord.gz")
    assert shards and not (tmp_path / "work/runs/1/examples").exists()
    assert LineageStore(config.lineage).latest("rb", "examples").uri == "gs://bucket/trainer-test/examples/run-1"
    card = ModelRegistry(config.model_root).card("rb", 1)
    assert card.training["synthesis"]["counts"] == {"red": 4} and card.training["counts"]["synthetic"] == 4
    report = html.unescape((tmp_path / "models/rb/versions/1/evaluation/report.html").read_text())
    assert "synthetic training images {'red': 4} (3 GAN steps)" in report

    examples, data = read_examples("gs://bucket/trainer-test/examples/run-1")
    assert len(examples) == len(data) == 24 and [e.split for e in examples][:16] == ["train"] * 16
    labels = {rel: colour for rel, colour in rows}
    assert all(e.labels == (labels["/".join(e.image_uri.split("/")[-2:])],) for e in examples)
    assert all(
        d == (tmp_path / "/".join(e.image_uri.split("/")[-2:])).read_bytes()
        for e, d in zip(examples, data, strict=True)
    )
