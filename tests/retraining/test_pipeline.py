"""Whole retraining runs on tiny data with the small CNN: a blessed push, a refused candidate,
a validation stop, the run lock, and rollback.

A whole run costs tens of seconds (importing TensorFlow twice, training and export), so the
first run is made once per module (``first_run``) and the tests that go on from it get a
private copy of its registry and work folder (``after_first_run``); one tuned second run
(``tuned_second_run``) serves the Tuner and rollback tests. The images and the manifest are
shared and never written.
"""

import fcntl
import json
import shutil
from pathlib import Path

import pytest

from models.registry import ModelRegistry, RegistryError
from models.tuning import TunerConfig
from retraining.evaluator import EvaluationConfig
from retraining.lineage import LineageStore
from retraining.lock import RunLocked, run_lock
from retraining.pipeline import RetrainConfig, format_summary, run_once
from tests.helpers import write_colour_dataset, write_csv

# Red against blue is learnt in a few epochs; more only make each run slower.
TRAINER = {"backbone": "small_cnn", "image_size": 32, "epochs": 10, "learning_rate": 0.02, "patience": 10}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Images and a manifest with explicit splits (read-only): (folder, manifest rows)."""
    folder = tmp_path_factory.mktemp("retrain-data")
    rows = write_colour_dataset(folder, ["red", "blue"], 24)
    splits = ["train"] * 16 + ["validation"] * 4 + ["test"] * 4
    body = [[rel, colour, splits[i % 24]] for i, (rel, colour) in enumerate(rows)]
    write_csv(folder / "manifest.csv", ["image_uri", "labels", "split"], body)
    return folder, body


def _config(data_dir: Path, root: Path) -> RetrainConfig:
    return RetrainConfig(
        model_name="rb",
        manifest=str(data_dir / "manifest.csv"),
        model_root=str(root / "models"),
        work_dir=str(root / "work"),
        trainer={**TRAINER, "labels": ["red", "blue"]},
        evaluation={"floor": 0.8, "tolerance": 0.02},
    )


@pytest.fixture
def setup(data, tmp_path):
    """A fresh registry and work folder: no run yet."""
    data_dir, body = data
    return tmp_path, _config(data_dir, tmp_path), body


@pytest.fixture(scope="module")
def first_run(data, tmp_path_factory):
    """The module's first run, read-only: a run killed midway (left 'running' in the lineage),
    then a whole run that is blessed and pushes v1. Returns (root, config, summary, dead run id)."""
    root = tmp_path_factory.mktemp("first-run")
    config = _config(data[0], root)
    Path(config.work_dir).mkdir(parents=True)
    dead = LineageStore(config.lineage).start_run("rb", {})
    return root, config, run_once(config), dead


def _copy_of_first_run(first_run, target: Path) -> RetrainConfig:
    root, config, _, _ = first_run
    shutil.copytree(root / "models", target / "models")
    shutil.copytree(root / "work", target / "work")
    return config.model_copy(update={"model_root": str(target / "models"), "work_dir": str(target / "work")})


@pytest.fixture
def after_first_run(first_run, data, tmp_path):
    """A private copy of the registry and work folder (lineage included) after ``first_run``."""
    return tmp_path, _copy_of_first_run(first_run, tmp_path), data


@pytest.fixture(scope="module")
def tuned_second_run(first_run, tmp_path_factory):
    """A second run on a copy of ``first_run``, read-only: with the Tuner, and an Evaluator that
    blesses whatever the candidate scores, so it is pushed as v2. Returns (config, summary)."""
    config = _copy_of_first_run(first_run, tmp_path_factory.mktemp("second-run"))
    tuner = TunerConfig(enabled=True, max_trials=3, max_seconds=120, batch_size=[8, 16])
    lenient = EvaluationConfig(floor=0.0, tolerance=1.0, per_label_tolerance=1.0)
    return config, run_once(config.model_copy(update={"tuner": tuner, "evaluation": lenient}))


def test_first_run_is_blessed_on_the_floor_and_pushed_with_lineage(first_run):
    root, config, summary, _ = first_run
    assert summary.status == "succeeded" and summary.blessed and summary.pushed_version == 1
    assert summary.production is None and summary.candidate["accuracy"] >= 0.8
    assert summary.counts == {"train": 32, "validation": 8, "test": 8, "unreadable": 0}
    registry = ModelRegistry(config.model_root)
    assert registry.alias("rb", "production") == 1
    card = registry.card("rb", 1)
    assert card.training["retraining_run"] == summary.run_id
    report = (root / "models/rb/versions/1/evaluation/report.html").read_text()
    assert "trained: recipe as configured; 32 px, 0 fine-tuning epochs, TTA none; backbone small_cnn" in report
    store = LineageStore(config.lineage)
    components = [e.component for e in store.executions(summary.run_id)]
    assert components == ["ExampleGen", "DataValidation", "Trainer", "Evaluator", "InfraValidator", "Pusher"]
    pusher = store.executions(summary.run_id)[-1]
    assert len(json.loads(pusher.inputs)) == 4  # model, blessing, infra blessing, evaluation
    assert "pushed: v1 is production" in format_summary(summary)


def test_a_candidate_trained_on_mislabelled_data_is_never_promoted(after_first_run):
    tmp_path, config, (data_dir, body) = after_first_run
    swapped = {"red": "blue", "blue": "red"}
    corrections = [
        [str(data_dir / rel), swapped[colour], "2026-11-01T00:00:00Z"] for rel, colour, split in body if split != "test"
    ]
    write_csv(tmp_path / "corrections.csv", ["image_uri", "labels", "corrected_at"], corrections)
    summary = run_once(config.model_copy(update={"corrections": str(tmp_path / "corrections.csv")}))
    assert summary.status == "succeeded" and not summary.blessed and summary.pushed_version is None
    assert summary.production_version == 1 and summary.candidate["accuracy"] < summary.production["accuracy"]
    assert any("worse than production" in r for r in summary.reasons)
    assert ModelRegistry(config.model_root).alias("rb", "production") == 1
    assert ModelRegistry(config.model_root).versions("rb") == [1]


def test_an_unknown_label_stops_the_run_at_validation(after_first_run):
    tmp_path, config, (data_dir, body) = after_first_run
    write_csv(
        tmp_path / "c.csv",
        ["image_uri", "labels", "corrected_at"],
        [[str(data_dir / body[0][0]), "crimson", "2026-11-01T00:00:00Z"]],
    )
    summary = run_once(config.model_copy(update={"corrections": str(tmp_path / "c.csv")}))
    assert summary.status == "failed" and summary.pushed_version is None
    assert any("unknown label 'crimson'" in r for r in summary.reasons)
    store = LineageStore(config.lineage)
    assert [e.component for e in store.executions(summary.run_id)] == ["ExampleGen", "DataValidation"]


def test_a_second_run_at_the_same_time_is_refused(setup):
    _, config, _ = setup
    with run_lock(config.work_dir, "rb"):
        with pytest.raises(RunLocked, match="another retraining run of 'rb' is in progress \\(pid"):
            run_once(config)


def test_a_run_killed_midway_is_marked_abandoned_by_the_next(first_run):
    _, config, summary, dead = first_run  # the first run started after the dead one
    runs = {r.id: r.status for r in LineageStore(config.lineage).runs("rb")}
    assert runs == {dead: "abandoned", summary.run_id: "succeeded"}


def test_rollback_returns_production_to_the_previous_version(tuned_second_run, tmp_path):
    config, _ = tuned_second_run
    shutil.copytree(config.model_root, tmp_path / "models")  # a rollback moves the alias: on a copy
    registry = ModelRegistry(str(tmp_path / "models"))
    assert registry.alias("rb", "production") == 2
    assert registry.rollback("rb") == 1 and registry.alias("rb", "production") == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("rb")


def test_lock_file_is_released_when_the_holder_exits(setup):
    _, config, _ = setup
    with run_lock(config.work_dir, "rb"):
        pass
    with open(Path(config.work_dir, "rb.lock"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if still held


def test_the_tuner_searches_within_its_budget_and_the_trainer_uses_the_best(tuned_second_run):
    config, summary = tuned_second_run
    assert summary.blessed and set(summary.tuning) == {"learning_rate", "dropout", "batch_size"}
    assert summary.candidate["accuracy"] >= 0.8  # the floor the default evaluation of these tests sets
    card = ModelRegistry(config.model_root).card("rb", summary.pushed_version)
    assert card.training["learning_rate"] == pytest.approx(summary.tuning["learning_rate"])
    store = LineageStore(config.lineage)
    executions = {e.component: e for e in store.executions(summary.run_id)}
    (best,) = [a for a in store.artifacts(summary.run_id, "best_hyperparameters")]
    assert json.loads(best.uri and Path(best.uri).read_text())["trials"]
    assert best.id in json.loads(executions["Trainer"].inputs)
