import errno
import os
import shutil

import pytest

from models import storage
from models.errors import BrokenModel, Unavailable, exit_code
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
    with pytest.raises(RegistryError, match="no model named 'nope'"):
        registry.resolve("nope")
    assert registry.resolve("a", version=1).name == "a"


def test_model_and_alias_names_are_checked(tmp_path, saved_model_dir):
    with pytest.raises(ValueError, match="invalid model name"):
        ModelRegistry(str(tmp_path)).register(_card("../escape"), saved_model_dir)


# ---------------------------------------------------------------- broken versions and faults


def _two_versions(root, saved_model_dir) -> ModelRegistry:
    """'m' v1 (production) and v2 (candidate), both healthy."""
    registry = ModelRegistry(str(root))
    registry.register(_card(), saved_model_dir)
    registry.register(_card(), saved_model_dir)
    registry.set_alias("m", "production", 1)
    registry.set_alias("m", "candidate", 2)
    return registry


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "model.json is not valid JSON ("),
        ('{"name": "m", "image_size": "big"}', "model.json is not a valid model card: label_spec: Field required"),
        ("[1, 2]", "model.json is not a valid model card"),
        (b"\xff\xfe\x00garbage", "model.json is not UTF-8 text"),
    ],
)
def test_a_corrupt_card_is_a_broken_model_that_names_model_version_and_problem(
    tmp_path, saved_model_dir, content, problem
):
    registry = _two_versions(tmp_path, saved_model_dir)
    card = tmp_path / "m/versions/2/model.json"
    card.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(BrokenModel) as raised:
        registry.card("m", 2)
    message = str(raised.value)
    assert message.startswith("model 'm' version 2 is broken: ") and problem in message
    assert "input_value" not in message and "errors.pydantic.dev" not in message and " at 0x" not in message
    assert exit_code(raised.value) == 5
    with pytest.raises(BrokenModel, match="version 2 is broken"):
        registry.resolve("m", alias="candidate")
    assert registry.resolve("m").version == 1  # the healthy version is untouched
    statuses = registry.inspect("m")
    assert [(s.version, s.ok) for s in statuses] == [(1, True), (2, False)]
    assert statuses[1].reason == message and statuses[0].card.version == 1


def test_a_version_without_its_saved_model_is_broken(tmp_path, saved_model_dir):
    registry = _two_versions(tmp_path, saved_model_dir)
    (tmp_path / "m/versions/2/saved_model/saved_model.pb").unlink()
    with pytest.raises(BrokenModel, match=r"model 'm' version 2 is broken: it has no saved_model/saved_model.pb"):
        registry.resolve("m", version=2)
    shutil.rmtree(tmp_path / "m/versions/1/saved_model")
    with pytest.raises(BrokenModel, match="version 1 is broken"):
        registry.resolve("m")
    assert [(s.version, s.ok) for s in registry.inspect("m")] == [(1, False), (2, False)]
    assert registry.versions("m") == [1, 2]  # still listed: broken, not unfinished


def test_a_corrupt_alias_file_is_reported_and_raises_only_when_resolved(tmp_path, saved_model_dir):
    registry = _two_versions(tmp_path, saved_model_dir)
    (tmp_path / "m/aliases/staging").write_text("two\n")
    assert registry.aliases("m") == {"production": 1, "candidate": 2}
    good, broken = registry.alias_table("m")
    assert good == {"production": 1, "candidate": 2}
    assert list(broken) == ["staging"] and "alias 'staging' of model 'm' is broken" in broken["staging"]
    assert "'two'" in broken["staging"]
    with pytest.raises(BrokenModel, match="alias 'staging' of model 'm' is broken"):
        registry.resolve("m", alias="staging")
    assert registry.resolve("m").version == 1


class _FailingWrites:
    """Stands in for ``storage.write_bytes``: lets ``after`` writes through, then writes half a file and fails."""

    def __init__(self, after: int, errno_: int):
        self.after, self.errno, self.calls = after, errno_, 0
        self.real = storage.write_bytes

    def __call__(self, uri: str, data: bytes) -> None:
        self.calls += 1
        if self.calls > self.after:
            self.real(uri, data[: len(data) // 2])  # what a full disk leaves behind
            raise OSError(self.errno, os.strerror(self.errno), uri)
        self.real(uri, data)


def _snapshot(registry: ModelRegistry) -> tuple:
    return registry.versions("m"), registry.alias_table("m"), [(s.version, s.ok) for s in registry.inspect("m")]


@pytest.mark.parametrize("errno_", [errno.EROFS, errno.ENOSPC])
@pytest.mark.parametrize("after", [0, 1, 2, 3])  # fail at each write: two SavedModel files, a report file, the card
def test_a_register_whose_writes_fail_leaves_the_registry_as_it_was(
    tmp_path, saved_model_dir, monkeypatch, errno_, after
):
    root = tmp_path / "reg"
    registry = _two_versions(root, saved_model_dir)
    (tmp_path / "cm.png").write_bytes(b"png" * 100)
    before = _snapshot(registry)
    failing = _FailingWrites(after, errno_)
    monkeypatch.setattr(storage, "write_bytes", failing)
    with pytest.raises(Unavailable) as raised:
        registry.register(_card(), saved_model_dir, {"report/cm.png": str(tmp_path / "cm.png")})
    assert failing.calls == after + 1
    assert str(raised.value) == f"could not write version 3 of m under {root}: {os.strerror(errno_)}"
    assert _snapshot(registry) == before
    assert not (root / "m/versions/3").exists()  # its own files removed, model.json never written
    assert not list(root.rglob("*.tmp-*"))
    monkeypatch.undo()
    assert registry.register(_card(), saved_model_dir) == 3
    assert _snapshot(registry)[2] == [(1, True), (2, True), (3, True)]
    assert registry.alias_table("m") == before[1]


@pytest.mark.parametrize("step", ["write", "rename"])
def test_a_failed_alias_move_keeps_the_old_alias_and_no_temporary_file(tmp_path, saved_model_dir, monkeypatch, step):
    registry = _two_versions(tmp_path, saved_model_dir)
    if step == "write":
        monkeypatch.setattr(storage, "write_bytes", _FailingWrites(0, errno.ENOSPC))
    else:

        def refuse(src, dst):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), dst)

        monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(Unavailable, match="could not point alias 'production' of m at version 2 under"):
        registry.set_alias("m", "production", 2)
    monkeypatch.undo()
    assert registry.alias("m", "production") == 1
    assert sorted(p.name for p in (tmp_path / "m/aliases").iterdir()) == ["candidate", "production"]
