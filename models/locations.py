"""Where a run or a request may read and write: one allow-list rule, and the output rule.

Reads on a caller's behalf (an image URI, a batch job's CSV and every row in it) must lie
under an allowed prefix and outside the internal stores (registry, job store, retraining
work folder). Outputs must lie under an allowed write prefix (for the API), never inside
an internal store, never name an existing folder (Beam's text sink would delete it) and
never be the input. Local paths are compared after resolving symlinks and ``..``.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
from collections.abc import Mapping, Sequence

from models import storage
from models.errors import InvalidInput, NotAllowed


class UriNotAllowed(NotAllowed):
    """A URI outside the allowed locations, or inside an internal store."""


class OutputRefused(InvalidInput):
    """An output that would overwrite a folder or the input."""


def normalise(uri: str) -> str:
    """A canonical form to compare: a real local path, or a gs:// URI without '.' or '..'."""
    if any(ord(c) < 32 for c in uri):
        raise UriNotAllowed(f"{uri!r}: control characters are not allowed in URIs")
    if uri.startswith("gs://"):
        bucket_and_path = uri[len("gs://") :]
        if any(part in (".", "..") for part in bucket_and_path.split("/")):
            raise UriNotAllowed(f"{uri!r}: '.' and '..' are not allowed in gs:// URIs")
        return "gs://" + posixpath.normpath(bucket_and_path) + ("/" if uri.endswith("/") else "")
    if "://" in uri and not uri.startswith("file://"):
        raise UriNotAllowed(f"{uri!r}: only local paths, file:// and gs:// URIs are supported")
    return os.path.realpath(storage.local_path(uri))


def is_under(path: str, prefix: str) -> bool:
    """Whether normalised ``path`` is ``prefix`` or inside it (both normalised)."""
    if prefix.startswith("gs://"):
        return path.rstrip("/") == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/")
    return path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)


def internal_store(uri: str, internal: Mapping[str, str]) -> str | None:
    """The name of the internal store ``uri`` lies in (``internal``: name -> location), if any."""
    path = normalise(uri)
    for name, location in internal.items():
        if location and is_under(path, normalise(location)):
            return name
    return None


def check_allowed(
    uri: str, prefixes: Sequence[str], what: str = "URI", internal: Mapping[str, str] | None = None
) -> str:
    """``uri`` normalised, if it lies under one of ``prefixes`` and in no internal store."""
    if not uri:
        raise UriNotAllowed(f"empty {what}")
    path = normalise(uri)
    if not any(is_under(path, normalise(prefix)) for prefix in prefixes):
        raise UriNotAllowed(f"{what} {uri!r} is outside the allowed locations {list(prefixes)}")
    store = internal_store(path, internal or {})
    if store:
        raise UriNotAllowed(f"{what} {uri!r} is inside {store}, which requests may not touch")
    return path


def check_output(output: str, inputs: Sequence[str] = (), internal: Mapping[str, str] | None = None) -> None:
    """Refuses an output that would destroy what the run did not create."""
    path = normalise(output)
    store = internal_store(path, internal or {})
    if store:
        raise UriNotAllowed(f"output {output!r} is inside {store}; write predictions somewhere else")
    if storage.is_dir(path):
        raise OutputRefused(
            f"output {output!r} is an existing folder; name a file (e.g. {output.rstrip('/')}/predictions.csv)"
        )
    for source in inputs:
        if source and normalise(source) == path:
            raise OutputRefused(f"output {output!r} is the input file; name another file")


def is_loopback(host: str) -> bool:
    """Whether a server listening on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
