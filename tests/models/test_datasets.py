import csv

from PIL import Image

from models.datasets import stratified_test_split, write_digit_sets, write_digits, write_elpv, write_shapes


def test_stratified_split_holds_the_share_of_every_class():
    strata = ["a"] * 80 + ["b"] * 20
    mask = stratified_test_split(strata, 0.25, seed=0)
    assert mask[:80].sum() == 20 and mask[80:].sum() == 5


def test_elpv_is_written_as_images_and_manifests(tmp_path):
    paths = write_elpv(str(tmp_path), "multilabel", limit=120)
    with open(paths["manifest"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120 and all((tmp_path / r["image_uri"]).is_file() for r in rows)
    assert {label for r in rows for label in r["labels"].split(";") if label} == {"defective", "polycrystalline"}
    with open(paths["holdout"]) as f:
        holdout = list(csv.DictReader(f))
    assert len(holdout) == sum(r["split"] == "test" for r in rows) > 20


def _rows(paths):
    with open(paths["manifest"]) as f:
        return list(csv.DictReader(f))


def test_the_digit_sets_hold_one_to_three_distinct_digits_per_image(tmp_path):
    rows = _rows(write_digit_sets(str(tmp_path), count=60, seed=1))
    label_sets = [r["labels"].split(";") for r in rows]
    assert len(rows) == 60 and all(1 <= len(s) <= 3 and len(set(s)) == len(s) for s in label_sets)
    assert {d for s in label_sets for d in s} <= set("012345") and any(len(s) == 3 for s in label_sets)
    assert Image.open(tmp_path / rows[0]["image_uri"]).size == (24, 24)
    assert {r["split"] for r in rows} == {"train", "validation", "test"}


def test_shapes_and_digits_are_written_with_their_classes(tmp_path):
    shapes = _rows(write_shapes(str(tmp_path / "s"), per_class=4))
    assert sorted({r["labels"] for r in shapes}) == ["circle", "cross", "square", "star", "triangle"]
    digits = _rows(write_digits(str(tmp_path / "d")))
    assert len(digits) == 1797 and Image.open(tmp_path / "d" / digits[0]["image_uri"]).size == (8, 8)
