"""Which storage locations a caller may make the service read or write.

Requests name URIs (an image to classify, a batch job's input and output); without
this check they could make the server read ``/etc/passwd`` or another team's bucket.
Local paths are compared after resolving symlinks and ``..``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence

from models.errors import NotAllowed


class UriNotAllowed(NotAllowed):
    """A URI outside the allowed locations."""


def _normalise(uri: str) -> str:
    if any(ord(c) < 32 for c in uri):
        raise UriNotAllowed(f"{uri!r}: control characters are not allowed in URIs")
    if uri.startswith("gs://"):
        bucket_and_path = uri[len("gs://") :]
        if any(part in (".", "..") for part in bucket_and_path.split("/")):
            raise UriNotAllowed(f"{uri!r}: '.' and '..' are not allowed in gs:// URIs")
        return "gs://" + posixpath.normpath(bucket_and_path) + ("/" if uri.endswith("/") else "")
    if "://" in uri and not uri.startswith("file://"):
        raise UriNotAllowed(f"{uri!r}: only local paths, file:// and gs:// URIs are supported")
    return os.path.realpath(uri.removeprefix("file://"))


def _under(path: str, prefix: str) -> bool:
    if prefix.startswith("gs://"):
        return path.startswith(prefix if prefix.endswith("/") else prefix + "/")
    return path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)


def check_allowed(uri: str, prefixes: Sequence[str], what: str = "URI") -> str:
    """``uri`` normalised, if it lies under one of ``prefixes``; UriNotAllowed otherwise."""
    if not uri:
        raise UriNotAllowed(f"empty {what}")
    path = _normalise(uri)
    if not any(_under(path, _normalise(prefix)) for prefix in prefixes):
        raise UriNotAllowed(f"{what} {uri!r} is outside the allowed locations {list(prefixes)}")
    return path
