"""The `imgclf` console script, run as a user runs it: train, list, show, classify.

Training, classifying and retraining run the installed command in a subprocess; the rest (refusals,
registry reads, a first version to retrain on) call the same ``main()`` in-process.
"""

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import colour_image, write_colour_dataset, write_csv


def imgclf(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    exe = shutil.which("imgclf") or str(Path(os.sys.executable).parent / "imgclf")
    result = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and result.returncode != 0:
        pytest.fail(f"imgclf {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_train_on_a_folder_then_classify_a_csv(tmp_path, env, in_process, caplog):
    write_colour_dataset(tmp_path / "data", ["red", "blue"], 24)
    trained = in_process(
        "train",
        "--data",
        str(tmp_path / "data"),
        "--model",
        "rb",
        "--labels",
        "red,blue",
        "--backbone",
        "small_cnn",
        "--image-size",
        "32",
        "--epochs",
        "20",
        "--learning-rate",
        "0.02",
    )
    assert "rb version 1 (binary, 2 labels)" in trained.stdout and "aliases set: production" in trained.stdout
    assert "head epoch 1/20" in caplog.text  # progress per epoch

    (tmp_path / "new").mkdir()
    (tmp_path / "new/a.png").write_bytes(colour_image("blue", 4242))
    (tmp_path / "new/b.png").write_bytes(colour_image("red", 4243))
    (tmp_path / "new/c.png").write_bytes(b"GIF89a broken")
    write_csv(tmp_path / "new/in.csv", ["image_uri"], [["a.png"], ["b.png"], ["c.png"]])
    out = tmp_path / "new/out.csv"
    classified = imgclf("classify", "--input", str(tmp_path / "new/in.csv"), "--output", str(out), env=env)
    listed, shown = in_process("models", "list"), in_process("models", "show", "rb")
    assert "rb: versions [1], aliases production=1" in listed.stdout
    card = json.loads(shown.stdout)
    assert card["label_spec"]["labels"] == ["red", "blue"] and card["aliases"] == {"production": 1}
    assert "3 records (2 ok, 1 errors)" in classified.stdout
    with open(out, newline="") as f:
        rows = {r["image_uri"]: r for r in csv.DictReader(f)}
    assert rows["a.png"]["labels"] == "blue" and rows["b.png"]["labels"] == "red"
    assert rows["c.png"]["error"].startswith("decode_error")


def test_train_reports_an_unknown_label_and_exits_nonzero(tmp_path, in_process):
    write_colour_dataset(tmp_path / "d", ["red", "blue"], 4)
    write_csv(tmp_path / "m.csv", ["image_uri", "labels"], [["d/red/0.png", "red"], ["d/blue/0.png", "bleu"]])
    result = in_process(
        "train",
        "--manifest",
        str(tmp_path / "m.csv"),
        "--model",
        "x",
        "--labels",
        "red,blue",
        "--backbone",
        "small_cnn",
    )
    assert result.returncode == 2
    assert "unknown label 'bleu' in 1 rows (rows 2)" in result.stderr and "Traceback" not in result.stderr


def test_train_names_every_bad_parameter_with_its_reason(tmp_path, in_process):
    result = in_process("train", "--data", str(tmp_path), "--model", "x", "--budget", "10 minutes", "--epochs", "0")
    assert result.returncode == 2
    assert "budget: cannot read '10 minutes' as a duration" in result.stderr
    assert "epochs: Input should be greater than or equal to 1" in result.stderr


def test_classify_fails_fast_on_a_csv_without_image_uri(tmp_path, in_process):
    write_csv(tmp_path / "in.csv", ["file"], [["a.png"]])
    result = in_process("classify", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv"))
    assert result.returncode == 2 and "no 'image_uri' column" in result.stderr


def test_retrain_pushes_a_new_production_that_can_be_rolled_back(tmp_path, in_process, caplog):
    rows = write_colour_dataset(tmp_path / "d", ["red", "blue"], 16)
    splits = ["train"] * 10 + ["validation"] * 3 + ["test"] * 3
    write_csv(
        tmp_path / "d/m.csv",
        ["image_uri", "labels", "split"],
        [[rel, c, splits[i % 16]] for i, (rel, c) in enumerate(rows)],
    )
    trainer = "{backbone: small_cnn, image_size: 32, epochs: 15, learning_rate: 0.02, labels: [red, blue]}"
    (tmp_path / "retrain.yaml").write_text(
        f"model_name: rb\nmanifest: {tmp_path / 'd/m.csv'}\nwork_dir: {tmp_path / 'work'}\ntrainer: {trainer}\n"
        "validation: {min_examples_per_label: 3}\n"
        "evaluation: {floor: 0.0, tolerance: 1.0, per_label_tolerance: 1.0}\n"
    )
    same = ["--backbone", "small_cnn", "--image-size", "32", "--epochs", "15", "--learning-rate", "0.02"]
    first = in_process("train", "--manifest", str(tmp_path / "d/m.csv"), "--model", "rb", "--labels", "red,blue", *same)
    assert first.returncode == 0 and "aliases set: production" in first.stdout, first.stderr
    second = in_process("retrain", "--config", str(tmp_path / "retrain.yaml"))
    assert second.returncode == 0 and "pushed: v2 is production" in second.stdout, second.stderr
    assert "[6/6] Pusher" in caplog.text
    assert "production moved from v2 back to v1" in in_process("models", "rollback", "rb").stdout
    refused = in_process("models", "rollback", "rb")
    assert refused.returncode == 3 and "no earlier version" in refused.stderr
