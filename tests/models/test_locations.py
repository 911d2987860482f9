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
