"""`imgclf classify` as a user (or a careless script) runs it: nothing it did not create is
destroyed, bad input is a clear message or an error record, and nothing hangs or crashes.

Every run calls the command's own ``main()`` in-process (a subprocess costs a TensorFlow import);
the ones that could hang on a FIFO do so under ``fifo_watchdog``.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from beam_pipelines.csv_input import FIELD_LIMIT
from tests.helpers import colour_image, file_tree, write_csv
from tests.imgclf.conftest import fifo_watchdog


@pytest.fixture
def registry(registry_root) -> Path:
    return registry_root


@pytest.fixture
def env(tmp_path, registry):
    return {**os.environ, "IMGCLF_MODEL_ROOT": str(registry), "IMGCLF_DATA_DIR": str(tmp_path / "var")}


@pytest.fixture
def two(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    for i, colour in enumerate(["red", "blue"]):
        (tmp_path / "in" / f"{i}.png").write_bytes(colour_image(colour, 900 + i))
    return write_csv(tmp_path / "in" / "two.csv", ["image_uri"], [["0.png"], ["1.png"]])


def _refused(result, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def classify(in_process):
    return lambda *args: in_process("classify", *args)


def test_an_output_naming_an_existing_folder_is_refused_and_the_folder_kept(tmp_path, classify, two):
    folder = tmp_path / "some_dir"
    (folder / "keep").mkdir(parents=True)
    (folder / "keep" / "notes.txt").write_text("mine")
    before = file_tree(folder)
    result = classify("--input", str(two), "--output", str(folder))
    _refused(result, 2, "is an existing folder")
    assert file_tree(folder) == before


def test_the_input_as_output_is_refused(classify, two):
    before = two.read_bytes()
    result = classify("--input", str(two), "--output", f"file://{two}")
    _refused(result, 2, "is the input file")
    assert two.read_bytes() == before


@pytest.mark.parametrize("where", ["", "colours", "colours/aliases/production"])
def test_an_output_inside_the_registry_is_refused(classify, two, registry, where):
    before = file_tree(registry)
    output = str(registry / where) if where else str(registry)
    result = classify("--input", str(two), "--output", output)
    _refused(result, 4, "inside the model registry")
    assert file_tree(registry) == before


def test_an_unwritable_output_is_one_clear_line(tmp_path, classify, two):
    (tmp_path / "a_file").write_text("x")
    result = classify("--input", str(two), "--output", str(tmp_path / "a_file" / "out.csv"))
    _refused(result, 2, "cannot write the output")
    assert (tmp_path / "a_file").read_text() == "x"


def test_an_existing_output_file_is_replaced_whole_and_nothing_temporary_is_left(tmp_path, classify, two):
    out = tmp_path / "out" / "predictions.csv"
    out.parent.mkdir()
    out.write_text("an old run\n")
    assert classify("--input", str(two), "--output", str(out)).returncode == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["image_uri"] for r in sorted(rows, key=lambda r: r["image_uri"])] == ["0.png", "1.png"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["predictions.csv"]  # no temporary or probe files


def test_a_fifo_as_input_is_a_clear_error_not_a_hang(tmp_path, classify):
    os.mkfifo(tmp_path / "in.csv")
    with fifo_watchdog(tmp_path / "in.csv"):
        result = classify("--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv"))
    _refused(result, 2, "not a regular file")


def test_a_messy_csv_gives_one_record_per_row_and_keeps_every_value(tmp_path, classify):
    """Quoted newlines, a non-UTF-8 byte, an oversized field, extra cells, a FIFO image, a
    file:// URI, and input columns named like output columns, in one CSV."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "r.png").write_bytes(colour_image("red", 1))
    (d / "b.png").write_bytes(colour_image("blue", 2))
    os.mkfifo(d / "pipe.png")
    header = "image_uri,labels,input_labels,error,note\r\n"
    lines = [
        b'r.png,truth-r,orig-r,e-r,"two\r\nlines"\r\n',
        f"file://{d / 'b.png'},truth-b,orig-b,e-b,plain\r\n".encode(),
        b"r.png,truth-x,orig-x,e-x,caf\xe9\r\n",  # not UTF-8
        b"r.png,truth-y,orig-y,e-y," + b"y" * (FIELD_LIMIT + 1) + b"\r\n",
        b"b.png,truth-z,orig-z,e-z,note,one too many\r\n",
        b"pipe.png,truth-p,orig-p,e-p,fifo\r\n",
    ]
    (d / "in.csv").write_bytes(header.encode() + b"".join(lines))
    out = tmp_path / "out.csv"
    with fifo_watchdog(d / "pipe.png"):
        result = classify("--input", str(d / "in.csv"), "--output", str(out))
    assert result.returncode == 0 and "6 records (2 ok, 4 errors)" in result.stdout, result.stderr

    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    # 'labels' would collide with the record's field and 'input_labels' with another input column.
    by_truth = {r["input_input_labels"]: r for r in rows if r["input_input_labels"]}
    assert by_truth["truth-r"]["note"] == "two\r\nlines" and by_truth["truth-r"]["error"] == ""
    assert by_truth["truth-b"]["error"] == "" and by_truth["truth-b"]["image_uri"].startswith("file://")
    # Every input value survives beside the record's own fields, under a name that is not taken.
    assert (by_truth["truth-r"]["input_labels"], by_truth["truth-r"]["input_error"]) == ("orig-r", "e-r")
    assert by_truth["truth-r"]["labels"] in ("red", "green", "blue")
    assert by_truth["truth-x"]["error"].startswith("invalid_row: line 5 ")
    assert by_truth["truth-z"]["error"] == "invalid_row: line 7 has 6 cells but the header names 5 columns"
    assert by_truth["truth-p"]["error"].startswith("not_found: not a regular file")
    oversized = [r for r in rows if not r["input_input_labels"]]
    assert len(oversized) == 1 and "field larger than field limit" in oversized[0]["error"]


def test_a_corrupt_model_card_or_a_missing_saved_model_is_a_clear_error(classify, two, registry, tmp_path):
    version = registry / "colours" / "versions" / "1"
    good_card = (version / "model.json").read_text()
    (version / "model.json").write_text("{ not json")
    result = classify("--input", str(two), "--output", str(tmp_path / "o.csv"))
    _refused(result, 5, "'colours' version 1")

    (version / "model.json").write_text(good_card)
    shutil.rmtree(version / "saved_model")
    result = classify("--input", str(two), "--output", str(tmp_path / "o.csv"))
    _refused(result, 5, "'colours' version 1")
    assert not (tmp_path / "o.csv").exists()
