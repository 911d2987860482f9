"""ExampleGen on generated images: corrections win, splits are stable, bad images are listed."""

import csv
import glob
import json

import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

from beam_pipelines import example_gen
from beam_pipelines.options import LOCAL_RUNNER
from models.manifest import hash_split
from tests.helpers import colour_image, write_colour_dataset, write_csv


def _read(out, split):
    files = sorted(glob.glob(f"{out}/{split}/*.tfrecord.gz"))
    return [example_gen.parse_example(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_examples_merge_corrections_and_keep_splits(tmp_path):
    rows = write_colour_dataset(tmp_path, ["red", "blue"], 6)
    (tmp_path / "broken.png").write_bytes(colour_image("red", 1)[:60])
    manifest = [[rel, colour, "train" if i % 3 else "test"] for i, (rel, colour) in enumerate(rows)]
    manifest.append(["broken.png", "red", "train"])
    write_csv(tmp_path / "m.csv", ["image_uri", "labels", "split"], manifest)
    (tmp_path / "new.png").write_bytes(colour_image("blue", 77))
    write_csv(
        tmp_path / "corrections.csv",
        ["image_uri", "labels", "corrected_at"],
        [
            [str(tmp_path / "red/1.png"), "purple", "2026-01-01T00:00:00Z"],
            [str(tmp_path / "red/1.png"), "blue", "2026-02-01T00:00:00Z"],  # the later one wins
            [str(tmp_path / "red/1.png"), "green", "2025-12-01T00:00:00Z"],
            [str(tmp_path / "new.png"), "blue", "2026-02-02T00:00:00Z"],
        ],
    )
    out = tmp_path / "examples"
    options = PipelineOptions(
        [
            f"--runner={LOCAL_RUNNER}",
            f"--manifest={tmp_path / 'm.csv'}",
            f"--corrections={tmp_path / 'corrections.csv'}",
            f"--output_dir={out}",
        ]
    )
    with TestPipeline(options=options) as p:
        example_gen.build_pipeline(p, options)

    examples = {e["uri"]: e for split in ("train", "validation", "test") for e in _read(out, split)}
    assert len(examples) == 13  # 12 manifest images + 1 new, without the broken one
    relabelled = examples[str(tmp_path / "red/1.png")]
    assert relabelled["labels"] == ("blue",) and relabelled["source"] == "correction"
    assert relabelled["split"] == "train"  # the manifest's split holds under a correction
    assert examples[str(tmp_path / "new.png")]["split"] == hash_split(str(tmp_path / "new.png"))
    assert examples[str(tmp_path / "red/0.png")]["image"] == (tmp_path / "red/0.png").read_bytes()

    stats = json.loads((out / "statistics.json").read_text())
    assert stats["unreadable"] == 1
    assert sum(s["examples"] for s in stats["splits"].values()) == 13
    assert stats["splits"]["test"]["width"]["max"] == 40
    with open(out / "unreadable.csv") as f:
        (bad,) = list(csv.DictReader(f))
    assert bad["image_uri"] == "broken.png" and bad["error"].startswith("decode_error")


def test_a_correction_by_absolute_path_meets_the_manifests_relative_one(tmp_path, monkeypatch):
    rows = write_colour_dataset(tmp_path / "data", ["red", "blue"], 3)
    write_csv(tmp_path / "data" / "m.csv", ["image_uri", "labels", "split"], [[r, c, "train"] for r, c in rows])
    red = tmp_path / "data" / "red" / "0.png"  # as the label store names it
    write_csv(tmp_path / "c.csv", ["image_uri", "labels", "corrected_at"], [[str(red), "blue", "2026-01-01T00:00:00Z"]])
    monkeypatch.chdir(tmp_path)  # the manifest named relatively, as make demo's retrain config does
    options = PipelineOptions(
        [f"--runner={LOCAL_RUNNER}", "--manifest=data/m.csv", f"--corrections={tmp_path / 'c.csv'}", "--output_dir=out"]
    )
    with TestPipeline(options=options) as p:
        example_gen.build_pipeline(p, options)
    examples = _read(tmp_path / "out", "train")
    assert len(examples) == 6  # the corrected image once, not twice
    (corrected,) = [e for e in examples if e["source"] == "correction"]
    assert corrected["labels"] == ("blue",) and corrected["uri"].endswith("red/0.png")


def test_both_pipelines_options_parse_together():
    """Beam parses every options class in the process at once; no flag may be declared twice."""
    from beam_pipelines import batch  # noqa: F401

    options = PipelineOptions(["--max_image_bytes=5", "--manifest=m.csv"])
    assert options.get_all_options()["max_image_bytes"] == 5


def test_an_unusable_manifest_row_is_listed_as_unreadable_not_dropped(tmp_path):
    rows = write_colour_dataset(tmp_path, ["red"], 2)
    lines = [f"{rel},red,train\n".encode() for rel, _ in rows]
    lines.append(b"caf\xe9.png,red,train\n")  # not UTF-8
    lines.append(b"red/0.png,red,train,one too many\n")
    (tmp_path / "m.csv").write_bytes(b"image_uri,labels,split\n" + b"".join(lines))
    out = tmp_path / "examples"
    options = PipelineOptions([f"--runner={LOCAL_RUNNER}", f"--manifest={tmp_path / 'm.csv'}", f"--output_dir={out}"])
    with TestPipeline(options=options) as p:
        example_gen.build_pipeline(p, options)

    assert len(_read(out, "train")) == 2
    with open(out / "unreadable.csv", newline="") as f:
        bad = sorted(r["error"] for r in csv.DictReader(f))
    assert len(bad) == 2 and all(e.startswith("invalid_row: line ") for e in bad)
