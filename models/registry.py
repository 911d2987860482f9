"""The model registry: immutable versions and movable aliases, on a folder or ``gs://``.

Layout (see docs/contracts.md)::

    <root>/<name>/versions/<n>/saved_model/   the exported SavedModel
    <root>/<name>/versions/<n>/model.json     the model card, written last
    <root>/<name>/aliases/<alias>             a version number, replaced atomically

``model.json`` is written after everything else, so a version without it is an
unfinished write and is ignored by readers.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from models import storage
from models.errors import NotFound
from models.label_spec import LabelSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CARD_FILE = "model.json"
SAVED_MODEL_DIR = "saved_model"


class RegistryError(NotFound):
    """No such model, alias or version."""


class ModelCard(BaseModel):
    """What a version is: its labels, input, metrics and where it came from."""

    name: str
    version: int = 0
    label_spec: LabelSpec
    image_size: int
    backbone: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    data_fingerprint: str = ""
    parent_version: int | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    training: dict[str, Any] = Field(default_factory=dict)


class ResolvedModel(BaseModel):
    """A concrete version, as a pipeline or server uses it."""

    name: str
    version: int
    saved_model_uri: str
    card: ModelCard


def check_name(name: str, what: str = "model name") -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid {what} {name!r}: use letters, digits, '_', '-', '.' (max 64)")
    return name


class ModelRegistry:
    def __init__(self, root: str):
        self.root = root.rstrip("/")

    def _path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def version_uri(self, name: str, version: int) -> str:
        return self._path(name, "versions", str(version))

    def models(self) -> list[str]:
        cards = storage.list_files(self._path("*", "versions", "*", CARD_FILE))
        return sorted({Path(uri).parts[-4] for uri in cards})

    def versions(self, name: str) -> list[int]:
        """Complete versions, oldest first."""
        cards = storage.list_files(self._path(name, "versions", "*", CARD_FILE))
        found = {Path(uri).parts[-2] for uri in cards if Path(uri).parts[-4] == name}
        return sorted(int(v) for v in found if v.isdigit())

    def card(self, name: str, version: int) -> ModelCard:
        uri = storage.join(self.version_uri(name, version), CARD_FILE)
        if not storage.exists(uri):
            raise RegistryError(f"model {name!r} has no version {version} under {self.root}")
        return ModelCard.model_validate_json(storage.read_text(uri))

    def aliases(self, name: str) -> dict[str, int]:
        prefix = self._path(name, "aliases") + "/"
        return {
            uri[len(prefix) :]: int(storage.read_text(uri).strip())
            for uri in storage.list_files(prefix + "*")
            if ".tmp-" not in uri
        }

    def alias(self, name: str, alias: str) -> int | None:
        uri = self._path(name, "aliases", alias)
        return int(storage.read_text(uri).strip()) if storage.exists(uri) else None

    def set_alias(self, name: str, alias: str, version: int) -> None:
        check_name(alias, "alias")
        if version not in self.versions(name):
            raise RegistryError(f"model {name!r} has no version {version}")
        storage.replace_atomically(self._path(name, "aliases", alias), f"{version}\n".encode())

    def rollback(self, name: str, alias: str = "production") -> int:
        """Points ``alias`` back at the version it named before the current one (its parent)."""
        current = self.alias(name, alias)
        if current is None:
            raise RegistryError(f"model {name!r} has no alias {alias!r} to roll back")
        previous = self.card(name, current).parent_version
        if previous is None:
            raise RegistryError(f"{name} v{current} has no earlier version to roll back to")
        self.set_alias(name, alias, previous)
        return previous

    def register(self, card: ModelCard, saved_model_dir: str, files: dict[str, str] | None = None) -> int:
        """Copy a local SavedModel (and report files) in as the next version; returns its number."""
        check_name(card.name)
        existing = self.versions(card.name)
        unfinished = storage.list_files(self._path(card.name, "versions", "*", SAVED_MODEL_DIR, "*.pb"))
        taken = existing + [int(Path(u).parts[-3]) for u in unfinished if Path(u).parts[-3].isdigit()]
        version = max(taken, default=0) + 1
        dest = self.version_uri(card.name, version)
        storage.upload_dir(saved_model_dir, storage.join(dest, SAVED_MODEL_DIR))
        for name, local_path in (files or {}).items():
            storage.write_bytes(storage.join(dest, name), Path(local_path).read_bytes())
        card = card.model_copy(update={"version": version})
        storage.write_text(storage.join(dest, CARD_FILE), card.model_dump_json(indent=2))
        return version

    def resolve(self, name: str | None = None, alias: str | None = None, version: int | None = None) -> ResolvedModel:
        """A concrete version: by number, else by alias (default ``production``)."""
        name = name or self.default_model()
        if version is None:
            alias = alias or "production"
            version = self.alias(name, alias)
            if version is None:
                known = self.aliases(name)
                raise RegistryError(
                    f"model {name!r} has no alias {alias!r} (aliases: {known or 'none'}); "
                    "pass --version N or another --alias"
                )
        card = self.card(name, version)
        uri = storage.join(self.version_uri(name, version), SAVED_MODEL_DIR)
        return ResolvedModel(name=name, version=version, saved_model_uri=uri, card=card)

    def default_model(self, configured: str | None = None) -> str:
        if configured:
            return configured
        names = self.models()
        if len(names) == 1:
            return names[0]
        if not names:
            raise RegistryError(f"no models under {self.root}; train one with `imgclf train`")
        raise RegistryError(f"several models under {self.root} ({names}); pick one with --model")


def local_saved_model(uri: str, cache_dir: str | None = None) -> str:
    """A local path for a SavedModel, copied down once when it lives on ``gs://``.

    Versions are immutable, so a copy cached under the URI's hash never goes stale.
    """
    if storage.is_local(uri):
        return uri.removeprefix("file://")
    cache = Path(cache_dir or tempfile.gettempdir(), "imgclf-models")
    target = cache / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if not (target / "saved_model.pb").exists():
        partial = Path(tempfile.mkdtemp(prefix="partial-", dir=cache.mkdir(parents=True, exist_ok=True) or cache))
        storage.download_dir(uri, str(partial))
        try:
            partial.rename(target)
        except OSError:  # another process finished the same copy first
            shutil.rmtree(partial, ignore_errors=True)
    return str(target)
