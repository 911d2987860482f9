"""Imports: image folders, and batch prediction outputs (CSV and JSONL) as pre-annotations."""

from imgclf.cli import main as imgclf
from labeling_dashboard.store import LabelStore
from models.prediction import PredictionRecord, csv_header
from tests.helpers import colour_image, write_csv


def _records():
    return [
        PredictionRecord(
            image_uri="a.png", labels=["red"], scores={"red": 0.9, "blue": 0.1}, model_name="m", model_version=2
        ),
        PredictionRecord(image_uri="b.png", model_name="m", model_version=2, error="not_found: no such file: b.png"),
    ]


def test_a_batch_csv_output_becomes_predictions_and_its_error_rows_images(tmp_path, capsys):
    out = write_csv(tmp_path / "predictions.csv", csv_header([]), [r.to_csv_values() for r in _records()])
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    assert imgclf(["labels", "import", str(out), "--db", db]) == 0
    assert "2 new images, 1 predictions, 0 bad rows" in capsys.readouterr().out
    store = LabelStore(db)
    assert store.current("a.png") is None  # a prediction is not a human label
    assert store.add_images(["a.png", "b.png"]) == 0


def test_a_jsonl_output_with_a_broken_line_imports_the_rest_and_names_the_line(tmp_path, capsys):
    lines = [r.to_json() for r in _records()]
    out = tmp_path / "predictions.jsonl"
    out.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    assert imgclf(["labels", "import", str(out), "--db", db]) == 2
    printed = capsys.readouterr().out
    assert "1 predictions, 1 bad rows" in printed and "line 2: not JSON" in printed


def test_a_folder_adds_its_images_once(tmp_path, capsys):
    for i, colour in enumerate(["red", "blue"]):
        (tmp_path / "imgs").mkdir(exist_ok=True)
        (tmp_path / "imgs" / f"{colour}.png").write_bytes(colour_image(colour, i))
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    assert imgclf(["labels", "import", str(tmp_path / "imgs"), "--db", db]) == 0
    assert imgclf(["labels", "import", str(tmp_path / "imgs"), "--db", db]) == 0
    assert [line.split(": ")[1] for line in capsys.readouterr().out.splitlines()] == [
        "2 new images, 0 predictions, 0 bad rows",
        "0 new images, 0 predictions, 0 bad rows",
    ]
