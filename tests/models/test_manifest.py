import pytest

from models.manifest import (
    Example,
    ManifestError,
    check_labels,
    examples_from_folder,
    hash_split,
    read_manifest,
    write_manifest,
)
from tests.helpers import colour_image, write_csv


def test_relative_uris_resolve_against_the_manifest_folder_and_missing_splits_hash(tmp_path):
    write_csv(tmp_path / "m.csv", ["image_uri", "labels"], [["img/a.png", "cat;dog"], ["/abs/b.png", ""]])
    a, b = read_manifest(str(tmp_path / "m.csv"))
    assert a.image_uri == str(tmp_path / "img/a.png") and a.labels == ("cat", "dog")
    assert a.split == hash_split("img/a.png")  # the URI as written, so moving the folder keeps splits
    assert b.image_uri == "/abs/b.png" and b.labels == () and b.row == 2


def test_hash_split_is_stable_and_roughly_proportional():
    splits = [hash_split(f"gs://b/{i}.jpg") for i in range(5000)]
    assert splits == [hash_split(f"gs://b/{i}.jpg") for i in range(5000)]
    assert 0.07 < splits.count("test") / 5000 < 0.13
    assert 0.07 < splits.count("validation") / 5000 < 0.13


def test_a_manifest_without_the_labels_column_names_what_is_missing(tmp_path):
    write_csv(tmp_path / "m.csv", ["path", "label"], [["a.png", "x"]])
    with pytest.raises(ManifestError, match=r"missing \['image_uri', 'labels'\]"):
        read_manifest(str(tmp_path / "m.csv"))


def test_a_bad_split_value_names_the_row(tmp_path):
    write_csv(
        tmp_path / "m.csv", ["image_uri", "labels", "split"], [["a.png", "x", "train"], ["b.png", "x", "holdout"]]
    )
    with pytest.raises(ManifestError, match="row 2: split 'holdout'"):
        read_manifest(str(tmp_path / "m.csv"))


def test_unknown_labels_are_named_with_their_rows_and_a_way_out():
    examples = [
        Example("a", ("cat",), "train", 1),
        Example("b", ("cta",), "train", 2),
        Example("c", ("cta", "dog"), "train", 3),
    ]
    with pytest.raises(ManifestError) as e:
        check_labels(examples, ["cat", "dog"])
    assert "unknown label 'cta' in 2 rows (rows 2, 3)" in str(e.value)
    assert "--allow-new-labels" in str(e.value)


def test_an_image_folder_tree_becomes_single_label_examples(tmp_path):
    for label in ("red", "blue"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "1.png").write_bytes(colour_image(label, 1))
    (tmp_path / "red" / "notes.txt").write_text("not an image")
    examples = examples_from_folder(str(tmp_path))
    assert [(e.image_uri.rsplit("/", 2)[-2], e.labels) for e in examples] == [("blue", ("blue",)), ("red", ("red",))]


def test_write_then_read_round_trips(tmp_path):
    rows = [Example(str(tmp_path / "a.png"), ("x", "y"), "test"), Example(str(tmp_path / "b.png"), (), "train")]
    write_manifest(str(tmp_path / "m.csv"), rows)
    assert read_manifest(str(tmp_path / "m.csv")) == rows
