"""The model registry: immutable versions and movable aliases, on a folder or ``gs://``.

Layout (see docs/contracts.md)::

    <root>/<name>/versions/<n>/saved_model/   the exported SavedModel
    <root>/<name>/versions/<n>/model.json     the model card, written last
    <root>/<name>/aliases/<alias>             a version number, replaced atomically

``model.json`` is written after everything else (locally through a temporary file and a
rename), so a version without it is an unfinished write and is ignored by readers. A
version whose card or SavedModel is unusable is *broken*: reading it raises
``BrokenModel``, and ``inspect`` lists it with the reason without failing the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from apache_beam.io.filesystems import FileSystems
from pydantic import BaseModel, Field, ValidationError

from models import storage
from models.errors import BrokenModel, NotFound, Unavailable, describe
from models.label_spec import LabelSpec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # model names and aliases
_NAME = re.compile(NAME_PATTERN)
CARD_FILE = "model.json"
SAVED_MODEL_DIR = "saved_model"
SAVED_MODEL_FILE = "saved_model.pb"


class RegistryError(NotFound):
    """No such model, alias or version."""


class RuntimeCheck(BaseModel):
    """The parity gate's verdict on one accelerated artifact of a version (``models/parity.py``)."""

    passed: bool
    reason: str = Field(description="Why the artifact was refused, or the figures it passed on.")
    precision: Literal["f32", "bf16"] = "f32"
    split: str = Field("test", description="The images both runtimes were run on.")
    images: int = 0
    max_abs_diff: float | None = Field(None, description="Largest difference in any probability against TF.")
    decisions_changed: int | None = Field(None, description="Images whose labels differ from TF's.")
    images_per_s: float | None = Field(None, description="Encoded images in, probabilities out, on this runtime.")
    tf_images_per_s: float | None = Field(None, description="The same on the SavedModel, in the same run.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="The split's metrics on this runtime.")


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
    runtimes: dict[str, RuntimeCheck] = Field(
        default_factory=dict, description="Accelerated artifacts beside the SavedModel (openvino/), gate verdicts."
    )


class ResolvedModel(BaseModel):
    """A concrete version, as a pipeline or server uses it."""

    name: str
    version: int
    saved_model_uri: str
    card: ModelCard


class VersionStatus(BaseModel):
    """One version's health, so a listing can show every version even when some are broken."""

    version: int
    ok: bool
    reason: str = Field("", description="Why the version cannot be used; empty when ok.")
    card: ModelCard | None = None


def _card_problem(e: ValidationError) -> str:
    """What is wrong with a card, in a line: no pydantic dump, no input values."""
    errors = e.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return f"{CARD_FILE} is not valid JSON ({errors[0].get('ctx', {}).get('error', 'unparsable')})"
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'the card'}: {err['msg']}" for err in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return describe(ValueError(f"{CARD_FILE} is not a valid model card: {'; '.join(parts)}{more}"))


def _remove_quietly(uris: list[str]) -> None:
    """Best effort: a cleanup that fails leaves files a reader ignores (no model.json), nothing worse."""
    for uri in uris:
        with contextlib.suppress(Exception):
            if storage.exists(uri):
                FileSystems.delete([uri])


def _prune_empty_dirs(top: str) -> None:
    """Removes empty folders under a local ``top`` (and ``top``), deepest first."""
    if not storage.is_local(top) or not os.path.isdir(storage.local_path(top)):
        return
    for folder, _, _ in sorted(os.walk(storage.local_path(top)), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _reason(e: BaseException) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else describe(e)


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
        """The version's card; RegistryError if there is no such version, BrokenModel if it is unreadable."""
        uri = storage.join(self.version_uri(name, version), CARD_FILE)
        if not storage.exists(uri):
            raise RegistryError(f"model {name!r} has no version {version} under {self.root}")
        try:
            return ModelCard.model_validate_json(storage.read_text(uri))
        except UnicodeDecodeError:
            problem = f"{CARD_FILE} is not UTF-8 text"
        except ValidationError as e:
            problem = _card_problem(e)
        raise BrokenModel(f"model {name!r} version {version} is broken: {problem}")

    def inspect(self, name: str) -> list[VersionStatus]:
        """Every complete version with its health, oldest first; one broken version never fails the listing."""
        out = []
        for version in self.versions(name):
            try:
                resolved = self.resolve(name, version=version)
            except BrokenModel as e:
                out.append(VersionStatus(version=version, ok=False, reason=str(e)))
            else:
                out.append(VersionStatus(version=version, ok=True, card=resolved.card))
        return out

    def _alias_files(self, name: str) -> dict[str, str]:
        prefix = self._path(name, "aliases") + "/"
        return {uri[len(prefix) :]: uri for uri in storage.list_files(prefix + "*") if ".tmp-" not in uri}

    def _read_alias(self, name: str, alias: str, uri: str) -> int:
        text = storage.read_bytes(uri, limit=64).decode("utf-8", errors="replace").strip()
        if not text.isdigit():
            raise BrokenModel(
                f"alias {alias!r} of model {name!r} is broken: {uri} holds {text[:20]!r}, not a version number"
            )
        return int(text)

    def alias_table(self, name: str) -> tuple[dict[str, int], dict[str, str]]:
        """(alias -> version, broken alias -> reason): a corrupt alias file is reported, not raised."""
        good: dict[str, int] = {}
        broken: dict[str, str] = {}
        for alias, uri in self._alias_files(name).items():
            try:
                good[alias] = self._read_alias(name, alias, uri)
            except BrokenModel as e:
                broken[alias] = str(e)
        return good, broken

    def aliases(self, name: str) -> dict[str, int]:
        """Readable aliases only; ``alias_table`` also says which are broken and why."""
        return self.alias_table(name)[0]

    def alias(self, name: str, alias: str) -> int | None:
        """The version an alias names, None if it has none; BrokenModel if its file is corrupt."""
        uri = self._path(name, "aliases", alias)
        return self._read_alias(name, alias, uri) if storage.exists(uri) else None

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Points ``alias`` at ``version``; if the write fails the old alias stays as it was."""
        check_name(alias, "alias")
        if version not in self.versions(name):
            raise RegistryError(f"model {name!r} has no version {version}")
        try:
            storage.replace_atomically(self._path(name, "aliases", alias), f"{version}\n".encode())
        except OSError as e:
            raise Unavailable(
                f"could not point alias {alias!r} of {name} at version {version} under {self.root}: {_reason(e)}"
            ) from e

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
        """Copy a local SavedModel (and report files) in as the next version; returns its number.

        If a write fails (read-only root, disk full) this raises Unavailable after removing
        what it wrote for that version; ``model.json`` only ever appears whole, last.
        """
        check_name(card.name)
        existing = self.versions(card.name)
        unfinished = storage.list_files(self._path(card.name, "versions", "*", SAVED_MODEL_DIR, "*.pb"))
        taken = existing + [int(Path(u).parts[-3]) for u in unfinished if Path(u).parts[-3].isdigit()]
        version = max(taken, default=0) + 1
        dest = self.version_uri(card.name, version)
        sources = [
            (storage.join(dest, SAVED_MODEL_DIR, *path.relative_to(saved_model_dir).parts), path)
            for path in sorted(Path(saved_model_dir).rglob("*"))
            if path.is_file()
        ] + [(storage.join(dest, name), Path(local_path)) for name, local_path in (files or {}).items()]
        written: list[str] = []
        try:
            for uri, path in sources:
                written.append(uri)
                storage.write_bytes(uri, path.read_bytes())
            card = card.model_copy(update={"version": version})
            storage.replace_atomically(storage.join(dest, CARD_FILE), card.model_dump_json(indent=2).encode())
        except Exception as e:  # GCS client errors are not all OSErrors: clean up after any of them
            _remove_quietly([storage.join(dest, CARD_FILE), *reversed(written)])
            _prune_empty_dirs(dest)
            if isinstance(e, OSError):
                raise Unavailable(
                    f"could not write version {version} of {card.name} under {self.root}: {_reason(e)}"
                ) from e
            raise
        return version

    def resolve(self, name: str | None = None, alias: str | None = None, version: int | None = None) -> ResolvedModel:
        """A concrete version: by number, else by alias (default ``production``)."""
        name = name or self.default_model()
        if version is None:
            alias = alias or "production"
            version = self.alias(name, alias)
            if version is None:
                if not self.versions(name):
                    raise RegistryError(f"no model named {name!r} under {self.root}")
                raise RegistryError(f"model {name!r} has no alias {alias!r} (aliases: {self.aliases(name) or 'none'})")
        card = self.card(name, version)
        uri = storage.join(self.version_uri(name, version), SAVED_MODEL_DIR)
        if not storage.exists(storage.join(uri, SAVED_MODEL_FILE)):  # one cheap call; loading finds the rest
            raise BrokenModel(
                f"model {name!r} version {version} is broken: it has no {SAVED_MODEL_DIR}/{SAVED_MODEL_FILE}"
            )
        return ResolvedModel(name=name, version=version, saved_model_uri=uri, card=card)

    def default_model(self, configured: str | None = None) -> str:
        if configured:
            return configured
        names = self.models()
        if len(names) == 1:
            return names[0]
        if not names:
            raise RegistryError(f"no models under {self.root}")
        raise RegistryError(f"several models under {self.root} ({names}); name the one to use")


def resolve_saved_model(saved_model_uri: str) -> ResolvedModel:
    """The version a SavedModel URI belongs to (``<root>/<name>/versions/<n>/saved_model``).

    A pipeline whose model is swapped mid-stream gets only this URI with each result.
    """
    version_dir, leaf = posixpath.split(saved_model_uri.rstrip("/"))
    versions_dir, version = posixpath.split(version_dir)
    model_dir, versions = posixpath.split(versions_dir)
    root, name = posixpath.split(model_dir)
    if leaf != SAVED_MODEL_DIR or versions != "versions" or not version.isdigit():
        raise RegistryError(f"{saved_model_uri} is not a SavedModel of a registered version")
    return ModelRegistry(root).resolve(name, version=int(version))


def local_saved_model(uri: str, cache_dir: str | None = None, marker: str = SAVED_MODEL_FILE) -> str:
    """A local path for a SavedModel (or another folder of a version holding ``marker``), copied down once when
    it lives on ``gs://``.

    Versions are immutable, so a copy cached under the URI's hash never goes stale.
    """
    if storage.is_local(uri):
        return uri.removeprefix("file://")
    cache = Path(cache_dir or tempfile.gettempdir(), "imgclf-models")
    target = cache / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if not (target / marker).exists():
        partial = Path(tempfile.mkdtemp(prefix="partial-", dir=cache.mkdir(parents=True, exist_ok=True) or cache))
        storage.download_dir(uri, str(partial))
        try:
            partial.rename(target)
        except OSError:  # another process finished the same copy first
            shutil.rmtree(partial, ignore_errors=True)
    return str(target)
