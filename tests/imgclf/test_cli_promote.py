"""`imgclf models promote` points an alias at a version, which a running stream then follows."""

from imgclf.cli import main as imgclf
from models.registry import ModelRegistry
from tests.helpers import register_relabelled_version


def test_promote_moves_the_alias_to_a_complete_version_only(registry_root, capsys):
    root = ["--model-root", str(registry_root)]
    v2 = register_relabelled_version(registry_root, "colours", ["azul", "verde", "rojo"])
    assert imgclf(["models", "promote", "colours", "--version", str(v2), *root]) == 0
    assert "production moved from v1 to v2" in capsys.readouterr().out
    assert ModelRegistry(str(registry_root)).alias("colours", "production") == v2

    assert imgclf(["models", "promote", "colours", "--version", "9", *root]) == 3
    assert "no version 9" in capsys.readouterr().err
    assert imgclf(["models", "promote", "colours", *root]) == 2
    assert ModelRegistry(str(registry_root)).alias("colours", "production") == v2
