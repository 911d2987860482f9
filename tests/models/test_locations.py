"""Allowed prefixes: what a request may make the server read or write."""

from __future__ import annotations

import os

import pytest

from models.locations import UriNotAllowed, check_allowed


def test_paths_under_a_prefix_are_allowed_and_normalised(tmp_path):
    (tmp_path / "data").mkdir()
    assert check_allowed(str(tmp_path / "data" / "a.png"), [str(tmp_path)]) == str(tmp_path / "data" / "a.png")
    assert check_allowed(f"file://{tmp_path}/a.png", [str(tmp_path)]) == str(tmp_path / "a.png")
    assert check_allowed("gs://bucket/in/a.png", ["gs://bucket/in/"]) == "gs://bucket/in/a.png"


@pytest.mark.parametrize(
    "uri",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        "{tmp}/../outside.png",
        "{tmp}2/sibling-with-the-same-start.png",
        "gs://other-bucket/a.png",
        "gs://bucket/input-not-in/a.png",
        "gs://bucket/in/../secret/a.png",
        "http://example.com/a.png",
        "{tmp}/a\x00.png",
        "",
    ],
)
def test_everything_else_is_refused(tmp_path, uri):
    with pytest.raises(UriNotAllowed):
        check_allowed(uri.format(tmp=tmp_path), [str(tmp_path), "gs://bucket/in/"])


def test_a_symlink_pointing_outside_is_refused(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    os.symlink("/etc", allowed / "escape")
    with pytest.raises(UriNotAllowed):
        check_allowed(str(allowed / "escape" / "passwd"), [str(allowed)])


def test_an_output_is_refused_when_it_is_a_folder_the_input_or_inside_a_store(tmp_path):
    from models.locations import OutputRefused, check_output

    (tmp_path / "results").mkdir()
    (tmp_path / "in.csv").write_text("image_uri\n")
    stores = {"the model registry": str(tmp_path / "models")}
    with pytest.raises(OutputRefused, match="existing folder"):
        check_output(str(tmp_path / "results"))
    with pytest.raises(OutputRefused, match="is the input"):
        check_output(f"file://{tmp_path}/in.csv", inputs=[str(tmp_path / "in.csv")])
    with pytest.raises(UriNotAllowed, match="inside the model registry"):
        check_output(str(tmp_path / "models" / "m" / "aliases" / "production"), internal=stores)
    os.symlink(tmp_path / "models", tmp_path / "innocent")
    with pytest.raises(UriNotAllowed, match="inside the model registry"):
        check_output(str(tmp_path / "innocent" / "out.csv"), internal=stores)
    check_output(str(tmp_path / "results" / "p.csv"), inputs=[str(tmp_path / "in.csv")], internal=stores)


def test_a_gcs_prefix_with_objects_under_it_counts_as_a_folder(gcs_emulator):
    from models import storage
    from models.locations import OutputRefused, check_output

    storage.write_text("gs://bucket/outfolder/keep.csv", "mine")
    with pytest.raises(OutputRefused, match="existing folder"):
        check_output("gs://bucket/outfolder")
    check_output("gs://bucket/outfolder/new.csv")
    assert storage.read_text("gs://bucket/outfolder/keep.csv") == "mine"
