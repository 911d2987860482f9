import json
from datetime import UTC, datetime, timedelta

import pytest

from labeling_dashboard.store import LabelStore
from models.registry import ModelRegistry
from retraining.corrections import new_since
from retraining.lineage import LineageStore
from retraining.pipeline import RetrainConfig
from retraining.scheduler import due, parse_every, run_forever
from tests.helpers import write_csv, write_split_colour_manifest

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_intervals_parse_and_bad_ones_are_explained():
    assert parse_every("24h") == timedelta(hours=24) and parse_every("90s") == timedelta(seconds=90)
    with pytest.raises(ValueError, match="e.g. 24h"):
        parse_every("daily")


def test_a_run_is_due_first_then_on_schedule_or_enough_new_labels():
    every = timedelta(hours=24)
    assert due(NOW, None, every, 0, 50) == "first run"
    assert due(NOW, NOW - timedelta(hours=1), every, 49, 50) is None
    assert due(NOW, NOW - timedelta(hours=1), every, 50, 50) == "50 new corrections (>= 50)"
    assert due(NOW, NOW - timedelta(hours=25), every, 0, 50).startswith("schedule")


def test_only_corrections_after_the_last_run_count(tmp_path):
    write_csv(
        tmp_path / "c.csv",
        ["image_uri", "labels", "corrected_at"],
        [["a", "x", "2026-11-29T11:00:00Z"], ["b", "x", "2026-11-29T13:00:00Z"], ["c", "x", "not a time"]],
    )
    assert new_since(str(tmp_path / "c.csv"), NOW) == 1
    assert new_since(str(tmp_path / "c.csv"), None) == 2
    assert new_since(str(tmp_path / "missing.csv"), NOW) == 0


def test_the_loop_runs_again_when_labels_are_saved_in_the_label_store_and_trains_on_them(tmp_path):
    _, rows = write_split_colour_manifest(tmp_path / "d")
    labels_db = f"sqlite:///{tmp_path / 'labels.db'}"
    config = RetrainConfig(
        model_name="rb",
        manifest=str(tmp_path / "d/m.csv"),
        corrections=labels_db,  # the store itself: no export step
        model_root=str(tmp_path / "models"),
        work_dir=str(tmp_path / "work"),
        trainer={"backbone": "small_cnn", "image_size": 32, "epochs": 5, "labels": ["red", "blue"]},
        validation={"min_examples_per_label": 2, "max_label_share_drift": 1.0},
        evaluation={"floor": 0.0, "tolerance": 1.0, "per_label_tolerance": 1.0},
    )
    sleeps = []
    run_forever(config, timedelta(hours=24), min_new_labels=2, poll_seconds=0, iterations=2, sleep=sleeps.append)
    lineage = LineageStore(config.lineage)
    assert [r.trigger for r in lineage.runs("rb")] == ["first run"] and sleeps == [0]

    store = LabelStore(labels_db)  # two red training images corrected to blue by a person
    red_train = [str(tmp_path / "d" / rel) for rel, c in rows if c == "red"][:8]  # each colour's first 8 train
    store.add_images(red_train[:2])
    for uri in red_train[:2]:
        store.annotate(uri, ["blue"], "ann", seen_revision=0)
    run_forever(config, timedelta(hours=24), min_new_labels=2, poll_seconds=0, iterations=1)
    runs = lineage.runs("rb")
    assert [r.trigger for r in runs] == ["first run", "2 new corrections (>= 2)"]
    assert ModelRegistry(config.model_root).versions("rb") == [1, 2]
    first, second = (
        json.loads((tmp_path / "work" / "runs" / str(r.id) / "examples" / "statistics.json").read_text()) for r in runs
    )
    before, after = first["splits"]["train"]["label_counts"], second["splits"]["train"]["label_counts"]
    assert after == {"red": before["red"] - 2, "blue": before["blue"] + 2}
