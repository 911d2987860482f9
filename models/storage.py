"""File access for local paths and ``gs://`` alike, through Beam's ``FileSystems``.

With ``STORAGE_EMULATOR_HOST`` set (the GCS emulator), Beam is told up front that
there are no Google credentials, so it connects anonymously at once instead of
retrying ``google.auth.default()`` for half a minute.
"""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path
from typing import BinaryIO

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from models.errors import InvalidInput


def use_emulator_if_configured() -> None:
    """With STORAGE_EMULATOR_HOST set, make Beam's GCS client anonymous; otherwise do nothing."""
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        use_anonymous_beam_credentials()


def use_anonymous_beam_credentials() -> None:
    """Hand Beam anonymous Google credentials, for emulators: it neither searches for real ones nor asks.

    Anonymous credentials rather than none: Beam's GCS client treats both alike, but its
    apitools BigQuery client, given none, starts an interactive OAuth flow (models.bigquery).
    """
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # pragma: no cover - the gcp extra is a hard dependency
        return
    from google.auth.credentials import AnonymousCredentials

    with auth._Credentials._credentials_lock:
        auth._Credentials._credentials = auth._ApitoolsCredentialsAdapter(AnonymousCredentials())
        auth._Credentials._credentials_init = True


use_emulator_if_configured()


class NotARegularFile(InvalidInput):
    """A FIFO, device, socket or folder where a file was expected: reading it could hang forever."""


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> str:
    """A local path for ``uri``: ``file:///x`` and ``/x`` name the same file."""
    return uri.removeprefix("file://")


def _fs(uri: str) -> str:
    """What Beam's FileSystems expects: plain paths locally (it has no ``file://`` scheme)."""
    return local_path(uri) if is_local(uri) else uri


def join(base: str, *parts: str) -> str:
    return FileSystems.join(_fs(base), *parts)


def exists(uri: str) -> bool:
    return FileSystems.exists(_fs(uri))


def is_dir(uri: str) -> bool:
    """A local folder, or a gs:// prefix with objects under it."""
    if is_local(uri):
        return os.path.isdir(local_path(uri))
    return bool(list_files(uri.rstrip("/") + "/*"))


def open_for_read(uri: str) -> BinaryIO:
    """A binary stream of a regular file or object; NotARegularFile for anything else.

    A local path is opened without blocking first, so a FIFO with no writer cannot hang
    the caller, and its type is checked on the open descriptor, so it cannot be swapped
    between the check and the read.
    """
    if not is_local(uri):
        return FileSystems.open(uri, compression_type="uncompressed")
    path = local_path(uri)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def size(uri: str) -> int:
    """Size in bytes; raises FileNotFoundError if there is no such file."""
    try:
        metadata = FileSystems.match([_fs(uri)])[0].metadata_list
    except BeamIOError as e:
        raise FileNotFoundError(uri) from e
    if not metadata:
        raise FileNotFoundError(uri)
    return metadata[0].size_in_bytes


def read_bytes(uri: str, limit: int | None = None) -> bytes:
    """The file's bytes, or its first ``limit`` bytes."""
    with open_for_read(uri) as f:
        return f.read() if limit is None else f.read(limit)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8-sig")


def write_bytes(uri: str, data: bytes) -> None:
    if is_local(uri):
        Path(local_path(uri)).parent.mkdir(parents=True, exist_ok=True)
    with FileSystems.create(_fs(uri)) as f:
        f.write(data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode())


def replace_atomically(uri: str, data: bytes) -> None:
    """Readers see the old content or the new, never a partial file.

    Locally a temporary file is renamed over the target; a GCS object is replaced
    whole by a single upload, which is already atomic.
    """
    if not is_local(uri):
        write_bytes(uri, data)
        return
    tmp = f"{local_path(uri)}.tmp-{uuid.uuid4().hex}"
    try:
        write_bytes(tmp, data)
        os.replace(tmp, local_path(uri))
    finally:
        if os.path.exists(tmp):  # a failed write leaves nothing of ours behind
            os.unlink(tmp)


def list_files(pattern: str) -> list[str]:
    try:
        return sorted(m.path for m in FileSystems.match([_fs(pattern)])[0].metadata_list)
    except BeamIOError:
        return []


def upload_dir(local_dir: str, dest: str) -> None:
    for path in sorted(Path(local_dir).rglob("*")):
        if path.is_file():
            write_bytes(join(dest, *path.relative_to(local_dir).parts), path.read_bytes())


def download_dir(src: str, local_dir: str) -> None:
    prefix = src.rstrip("/") + "/"
    for uri in list_files(prefix + "**"):
        relative = uri[len(prefix) :]
        target = Path(local_dir, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_bytes(uri))
