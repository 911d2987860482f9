"""`imgclf models list/show` on a registry with broken versions: reported with the reason, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.label_spec import LabelSpec
from models.registry import ModelCard, ModelRegistry


@pytest.fixture
def broken_registry(tmp_path) -> Path:
    """'m': v1 healthy (production), v2 with a corrupt card (candidate), v3 without its SavedModel; a corrupt alias."""
    sm = tmp_path / "sm"
    (sm / "variables").mkdir(parents=True)
    (sm / "saved_model.pb").write_bytes(b"graph")
    (sm / "variables/variables.index").write_bytes(b"index")
    root = tmp_path / "models"
    registry = ModelRegistry(str(root))
    card = ModelCard(
        name="m", label_spec=LabelSpec(task="binary", labels=["no", "yes"]), image_size=32, backbone="small_cnn"
    )
    for _ in range(3):
        registry.register(card, str(sm))
    registry.set_alias("m", "production", 1)
    registry.set_alias("m", "candidate", 2)
    (root / "m/versions/2/model.json").write_text('{"name": "m", "label_spec": ')
    (root / "m/versions/3/saved_model/saved_model.pb").unlink()
    (root / "m/aliases/staging").write_text("latest\n")
    return root


def test_list_shows_broken_versions_and_aliases_with_the_reason(broken_registry, in_process):
    listed = in_process("models", "list")
    lines = listed.stdout.splitlines()
    assert lines[0] == "m: versions [1, 2, 3], aliases candidate=2, production=1"
    assert any(line.strip().startswith("model 'm' version 2 is broken: model.json is not valid JSON") for line in lines)
    assert any("model 'm' version 3 is broken: it has no saved_model/saved_model.pb" in line for line in lines)
    assert any("alias 'staging' of model 'm' is broken" in line for line in lines)
    assert "Traceback" not in listed.stderr


def test_show_of_a_broken_version_prints_the_error_and_exits_5(broken_registry, in_process):
    cases = [
        (["--version", "2"], "model 'm' version 2 is broken: model.json is not valid JSON"),
        (["--alias", "candidate"], "model 'm' version 2 is broken"),
        (["--version", "3"], "model 'm' version 3 is broken: it has no saved_model/saved_model.pb"),
        (["--alias", "staging"], "alias 'staging' of model 'm' is broken"),
    ]
    healthy = in_process("models", "show", "m")
    results = [in_process("models", "show", "m", *args) for args, _ in cases]
    assert '"version": 1' in healthy.stdout
    for (args, problem), shown in zip(cases, results, strict=True):
        assert shown.returncode == 5, (args, shown.stdout, shown.stderr)
        assert shown.stderr.startswith(f"error: {problem}") and "Traceback" not in shown.stderr
        assert shown.stdout == ""
