"""One exception root for everything imgclf raises on purpose, in four families.

The core says what is wrong in its own terms; the CLI maps a family to an exit code and
the API to an HTTP status (``EXIT_CODES``, ``HTTP_STATUS``), each adding the remedy in its
own vocabulary (a flag name is CLI vocabulary, not core vocabulary). Each family keeps a
built-in second parent, so ``except ValueError`` and the like still catch what they did.

    ImgclfError                    exit 1   HTTP 500
    ├── InvalidInput  ValueError   exit 2   HTTP 422   a bad flag, CSV, manifest or config
    ├── NotFound      LookupError  exit 3   HTTP 404   unknown model, alias, version or file
    ├── NotAllowed    PermissionError exit 4 HTTP 403  outside the allowed locations, or a write
    │                                                  that would destroy what we did not create
    └── Unavailable   RuntimeError exit 5   HTTP 503   a broken model version, storage that
                                                       cannot be written, a read that timed out
"""

from __future__ import annotations

import re

from pydantic import ValidationError


class ImgclfError(Exception):
    """The root: anything imgclf raises on purpose, with a message fit to show a person."""


class InvalidInput(ImgclfError, ValueError):
    """What the caller gave cannot be used as it is."""


class NotFound(ImgclfError, LookupError):
    """What the caller named does not exist."""


class NotAllowed(ImgclfError, PermissionError):
    """The caller may not read or write there."""


class Unavailable(ImgclfError, RuntimeError):
    """Something we depend on is broken or out of reach; the caller's request was fine."""


class BrokenModel(Unavailable):
    """A model version exists but cannot be used (unreadable card, missing or corrupt SavedModel)."""


EXIT_CODES: dict[type[ImgclfError], int] = {InvalidInput: 2, NotFound: 3, NotAllowed: 4, Unavailable: 5}
HTTP_STATUS: dict[type[ImgclfError], int] = {InvalidInput: 422, NotFound: 404, NotAllowed: 403, Unavailable: 503}


def _family_value(error: BaseException, table: dict[type[ImgclfError], int], default: int) -> int:
    for family, value in table.items():
        if isinstance(error, family):
            return value
    return default


def exit_code(error: BaseException) -> int:
    return _family_value(error, EXIT_CODES, 1)


def http_status(error: BaseException) -> int:
    """The family's status, unless the class names a more precise one (``status`` attribute)."""
    return getattr(error, "status", None) or _family_value(error, HTTP_STATUS, 500)


_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")


def describe(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, without object reprs, for people to read; for a config that
    failed validation, every field with its reason (pydantic's first line names only the model)."""
    if isinstance(error, ValidationError):
        reasons = [
            f"{'.'.join(str(part) for part in e['loc']) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        ]
        return "; ".join(reasons)[:limit]
    text = _REPR.sub("the data", str(error)).strip()
    text = text.splitlines()[0].strip() if text else type(error).__name__
    return text[:limit]
