"""The batch pipeline end to end: a CSV mixing good and bad inputs, one record per row."""

import csv
import json
from types import SimpleNamespace

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from beam_pipelines import batch, run_status
from beam_pipelines.csv_input import CsvInputError
from beam_pipelines.options import LOCAL_RUNNER
from models.runtimes import RuntimeUnavailable
from tests.helpers import colour_image, write_csv


def _options(**flags) -> PipelineOptions:
    return PipelineOptions([f"--{k}={v}" for k, v in {"runner": LOCAL_RUNNER, **flags}.items()])


@pytest.fixture
def mixed_inputs(tmp_path, colour_data):
    """Good images of each colour plus every kind of bad input, with an id column."""
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all")
    (tmp_path / "truncated.jpg").write_bytes(colour_image("red", 7, fmt="JPEG")[:300])
    (tmp_path / "huge.png").write_bytes(colour_image("red", 8, size=300))
    good = [
        [str(colour_data / f"{c}/{i}.png"), f"g-{c}-{i}", c] for c in ("red", "green", "blue") for i in range(20, 24)
    ]
    bad = [
        [str(tmp_path / "missing.png"), "b-missing", ""],
        [str(tmp_path / "zero.png"), "b-zero", ""],
        [str(tmp_path / "text.jpg"), "b-text", ""],
        [str(tmp_path / "truncated.jpg"), "b-truncated", ""],
        [str(tmp_path / "huge.png"), "b-huge", ""],
        ["", "b-empty", ""],
    ]
    write_csv(tmp_path / "in.csv", ["image_uri", "id", "labels"], good[:5] + bad + good[5:])
    return tmp_path / "in.csv"


EXPECTED_ERRORS = {
    "b-missing": "not_found",
    "b-zero": "not_an_image",
    "b-text": "not_an_image",
    "b-truncated": "decode_error",
    "b-huge": "too_large",
    "b-empty": "not_found",
}


def _check_records(rows: list[dict]) -> None:
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == len(by_id) == 18
    for rid, code in EXPECTED_ERRORS.items():
        assert by_id[rid]["error"].startswith(code + ": "), by_id[rid]
        assert not by_id[rid]["labels"] and not by_id[rid]["scores"]
    good = [r for r in rows if r["id"].startswith("g-")]
    assert all(not r["error"] for r in good)
    assert sum(r["labels"] == r["input_labels"] for r in good) >= 11
    for r in good:
        assert r["model_name"] == "colours" and str(r["model_version"]) == "1"
        assert r["predicted_at"].endswith("Z") and r["runtime"] in ("tf", "openvino")


def test_every_row_becomes_one_csv_record_with_errors_in_place(mixed_inputs, trained_registry, tmp_path):
    out = tmp_path / "out.csv"
    options = _options(
        input=mixed_inputs, output=out, model_root=trained_registry, max_image_pixels=200 * 200, batch_size=4
    )
    with TestPipeline(options=options) as p:
        records = batch.build_pipeline(p, options)
        assert_that(records, lambda rs: len(rs) == 18 or pytest.fail(f"{len(rs)} records"))
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:8] == [
            "image_uri",
            "labels",
            "scores",
            "model_name",
            "model_version",
            "runtime",
            "predicted_at",
            "error",
        ]
        assert reader.fieldnames[8:] == ["id", "input_labels"]
        rows = list(reader)
    _check_records(rows)
    scores = json.loads(next(r for r in rows if r["id"] == "g-red-20")["scores"])
    assert set(scores) == {"blue", "green", "red"} and sum(scores.values()) == pytest.approx(1, abs=1e-4)


def test_jsonl_output_and_top_k(mixed_inputs, trained_registry, tmp_path):
    out = tmp_path / "out.jsonl"
    options = _options(input=mixed_inputs, output=out, model_root=trained_registry, top_k=2, max_image_pixels=40000)
    with TestPipeline(options=options) as p:
        batch.build_pipeline(p, options)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    _check_records([{**r, "labels": (r["labels"] or [""])[0], "scores": r["scores"] or ""} for r in rows])
    good = [r for r in rows if r["error"] is None]
    assert all(len(r["labels"]) == 2 and isinstance(r["scores"], dict) for r in good)


def test_a_csv_without_image_uri_fails_before_running(tmp_path, trained_registry):
    write_csv(tmp_path / "in.csv", ["path"], [["a.png"]])
    with pytest.raises(CsvInputError, match="no 'image_uri' column.*found \\['path'\\]"):
        batch.build_pipeline(
            TestPipeline(), _options(input=tmp_path / "in.csv", output=tmp_path / "o.csv", model_root=trained_registry)
        )


def test_run_prints_counts_and_exits_zero_with_bad_rows(mixed_inputs, trained_registry, tmp_path, capsys):
    out = tmp_path / "sharded.csv"
    code = batch.run(
        [
            f"--input={mixed_inputs}",
            f"--output={out}",
            f"--model_root={trained_registry}",
            "--max_image_pixels=40000",
            "--num_shards=2",
            f"--summary_file={tmp_path / 'status.json'}",
        ]
    )
    assert code == 0
    assert "18 records (12 ok, 6 errors)" in capsys.readouterr().out
    shards = sorted(tmp_path.glob("sharded-*-of-00002.csv"))
    assert len(shards) == 2
    status = run_status.read(tmp_path / "status.json")
    assert (status["state"], status["ok"], status["error"]) == ("succeeded", 12, 6)
    assert status["output_files"] == [str(s) for s in shards] and status["model_name"] == "colours"
    assert sum(len(s.read_text().splitlines()) - 1 for s in shards) == 18  # each shard has its header


def test_run_reports_an_unknown_model_without_a_traceback(mixed_inputs, trained_registry, tmp_path, capsys):
    code = batch.run(
        [
            f"--input={mixed_inputs}",
            f"--output={tmp_path / 'o.csv'}",
            f"--model_root={trained_registry}",
            "--model=nope",
            f"--summary_file={tmp_path / 'status.json'}",
        ]
    )
    assert code == 3  # the NotFound family
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'nope'" in err and "Traceback" not in err
    status = run_status.read(tmp_path / "status.json")
    assert status["state"] == "failed" and err.strip() == f"error: {status['reason']}"


def test_progress_is_counted_across_instances_and_written_whole(tmp_path):
    path = str(tmp_path / "status.json")
    run_status.ReportProgress.start(path)
    assert run_status.read(path) == {"state": "running", "ok": 0, "error": 0}
    first, second = run_status.ReportProgress(path, interval_s=0), run_status.ReportProgress(path, interval_s=0)
    for dofn, error in ((first, None), (second, None), (first, "decode_error: x")):
        assert list(dofn.process(SimpleNamespace(error=error))) == [SimpleNamespace(error=error)]
    assert run_status.read(path) == {"state": "running", "ok": 2, "error": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["status.json"], "no temporary file left behind"


def test_help_documents_every_option(capsys):
    # In-process: a `python -m beam_pipelines.batch` process costs a TensorFlow import (~10 s),
    # and every local batch job in tests/api/test_batch_jobs.py already starts the module that way.
    with pytest.raises(SystemExit) as exited:
        batch.run(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--input",
        "--output",
        "--output_format",
        "--model",
        "--alias",
        "--model_version",
        "--model_root",
        "--top_k",
        "--batch_size",
        "--max_image_bytes",
        "--max_image_pixels",
        "--num_shards",
        "--progress_every",
        "--runner",
        "--temp_location",
        "--setup_file",
    ):
        assert flag in out


def test_importing_the_batch_options_leaves_other_pipelines_parseable():
    options = PipelineOptions([f"--runner={LOCAL_RUNNER}"])
    assert options.get_all_options()["runner"] == LOCAL_RUNNER


def test_missing_input_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        batch.run(["--output=o.csv"])
    assert "the following arguments are required: --input" in capsys.readouterr().err


def _classify(inputs, registry, out, runtime: str) -> list[dict]:
    options = _options(input=inputs, output=out, model_root=registry, runtime=runtime, max_image_pixels=40000)
    with TestPipeline(options=options) as p:
        batch.build_pipeline(p, options)
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_openvino_and_tensorflow_give_the_same_records_and_say_which_ran(mixed_inputs, trained_registry, tmp_path):
    on_tf = {r["id"]: r for r in _classify(mixed_inputs, trained_registry, tmp_path / "tf.jsonl", "tf")}
    on_ov = {r["id"]: r for r in _classify(mixed_inputs, trained_registry, tmp_path / "ov.jsonl", "openvino")}

    assert on_tf.keys() == on_ov.keys()
    for rid, tf_row in on_tf.items():
        ov_row = on_ov[rid]
        assert (ov_row["labels"], ov_row["error"]) == (tf_row["labels"], tf_row["error"])
        if tf_row["error"] is None:
            assert (tf_row["runtime"], ov_row["runtime"]) == ("tf", "openvino")
            assert ov_row["scores"] == pytest.approx(tf_row["scores"], abs=1e-4)
        else:  # an image that never reached a model was run by neither
            assert tf_row["runtime"] is None or rid == "b-truncated"


def test_asking_for_openvino_on_a_version_without_an_artifact_fails_before_running(registry_root, tmp_path):
    from models.registry import ModelRegistry

    registry = ModelRegistry(str(registry_root))
    card = registry.card("colours", 1).model_copy(update={"runtimes": {}})
    version = registry.register(card, str(registry_root / "colours" / "versions" / "1" / "saved_model"))
    write_csv(tmp_path / "in.csv", ["image_uri"], [["a.png"]])
    flags = dict(input=tmp_path / "in.csv", output=tmp_path / "o.csv", model_root=registry_root, runtime="openvino")

    with pytest.raises(RuntimeUnavailable, match=f"colours v{version} has no OpenVINO artifact"):
        batch.plan(_options(**flags, model_version=version))
    assert batch.plan(_options(**flags, model_version=1)).runtime == "openvino"
    assert not (tmp_path / "o.csv").exists()
