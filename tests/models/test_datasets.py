import csv

from models.datasets import stratified_test_split, write_elpv


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
