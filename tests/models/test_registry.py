import pytest

from models.label_spec import LabelSpec
from models.registry import ModelCard, ModelRegistry, RegistryError


def _card(name: str = "m") -> ModelCard:
    return ModelCard(
        name=name, label_spec=LabelSpec(task="binary", labels=["no", "yes"]), image_size=32, backbone="small_cnn"
    )


@pytest.fixture
def saved_model_dir(tmp_path):
    d = tmp_path / "sm"
    (d / "variables").mkdir(parents=True)
    (d / "saved_model.pb").write_bytes(b"graph")
    (d / "variables" / "variables.index").write_bytes(b"index")
    return str(d)


def test_versions_number_up_and_copy_the_saved_model_and_files(tmp_path, saved_model_dir):
    registry = ModelRegistry(str(tmp_path / "reg"))
    (tmp_path / "cm.png").write_bytes(b"png")
    assert registry.register(_card(), saved_model_dir, {"report/cm.png": str(tmp_path / "cm.png")}) == 1
    assert registry.register(_card(), saved_model_dir) == 2
    assert registry.versions("m") == [1, 2]
    v1 = tmp_path / "reg/m/versions/1"
    assert (v1 / "saved_model/variables/variables.index").read_bytes() == b"index"
    assert (v1 / "report/cm.png").read_bytes() == b"png"
    assert registry.card("m", 2).version == 2


def test_aliases_resolve_to_versions_and_move(tmp_path, saved_model_dir):
    registry = ModelRegistry(str(tmp_path))
    registry.register(_card(), saved_model_dir)
    registry.register(_card(), saved_model_dir)
    registry.set_alias("m", "production", 1)
    assert registry.resolve("m").version == 1
    registry.set_alias("m", "production", 2)
    resolved = registry.resolve("m")
    assert (resolved.version, resolved.saved_model_uri) == (2, str(tmp_path / "m/versions/2/saved_model"))
    assert registry.aliases("m") == {"production": 2}
    assert not list(tmp_path.glob("m/aliases/*.tmp-*"))


def test_a_version_without_its_card_is_an_unfinished_write_and_is_skipped(tmp_path, saved_model_dir):
    registry = ModelRegistry(str(tmp_path))
    registry.register(_card(), saved_model_dir)
    (tmp_path / "m/versions/2/saved_model").mkdir(parents=True)
    (tmp_path / "m/versions/2/saved_model/saved_model.pb").write_bytes(b"half")
    assert registry.versions("m") == [1]
    assert registry.register(_card(), saved_model_dir) == 3  # never reuses the half-written number


def test_resolve_explains_what_is_missing(tmp_path, saved_model_dir):
    registry = ModelRegistry(str(tmp_path))
    with pytest.raises(RegistryError, match="no models under"):
        registry.resolve()
    registry.register(_card("a"), saved_model_dir)
    with pytest.raises(RegistryError, match="no alias 'production'"):
        registry.resolve("a")
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.set_alias("a", "production", 7)
    registry.register(_card("b"), saved_model_dir)
    with pytest.raises(RegistryError, match="several models"):
        registry.resolve()
    assert registry.resolve("a", version=1).name == "a"


def test_model_and_alias_names_are_checked(tmp_path, saved_model_dir):
    with pytest.raises(ValueError, match="invalid model name"):
        ModelRegistry(str(tmp_path)).register(_card("../escape"), saved_model_dir)
