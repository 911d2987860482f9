"""API keys: who may call, and which models each key may use.

Keys come from ``IMGCLF_API_KEYS``; storing ``sha256:<digest>`` instead of the key keeps
the secret out of manifests and environment dumps. Keys are compared by digest in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from models.registry import check_name


@dataclass(frozen=True)
class ApiKey:
    digest: str  # hex sha256 of the key
    models: frozenset[str] | None  # None: every model

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class Principal:
    """The caller of a request; ``key`` is None when the server runs without keys."""

    key: ApiKey | None

    def allows(self, model: str) -> bool:
        return self.key is None or self.key.allows(model)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(raw: str) -> list[ApiKey]:
    """'key1, sha256:abc...@model1|model2' -> ApiKeys; raises ValueError on a malformed entry."""
    keys = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        secret, _, scope = entry.partition("@")
        if secret.startswith("sha256:"):
            hexdigest = secret.removeprefix("sha256:").lower()
            if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
                raise ValueError("an IMGCLF_API_KEYS entry 'sha256:...' needs 64 hex digits")
        elif secret:
            hexdigest = digest(secret)
        else:
            raise ValueError("an IMGCLF_API_KEYS entry has no key before '@'")
        models = frozenset(m.strip() for m in scope.split("|") if m.strip()) if scope else None
        keys.append(ApiKey(hexdigest, models))
    return keys


def presented_key(request: Request) -> str | None:
    if key := request.headers.get("x-api-key"):
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(request: Request) -> Principal:
    """The dependency every protected route has: 401 without a valid key. Async: it never blocks, and a plain
    ``def`` dependency would cost a hop to a worker thread on every request."""
    keys: list[ApiKey] = request.app.state.api_keys
    if not keys:
        return Principal(None)
    presented = presented_key(request)
    if presented is not None:
        wanted = digest(presented)
        for key in keys:
            if hmac.compare_digest(key.digest, wanted):
                return Principal(key)
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or unknown API key: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authorize_model(name: str, principal: Annotated[Principal, Depends(authenticate)]) -> str:
    """The model name from the path, once the caller may use it (403 otherwise)."""
    try:
        check_name(name)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model named {name!r}") from None
    if not principal.allows(name):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key has no access to model {name!r}")
    return name
