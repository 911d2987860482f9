"""What models the registry has: versions, aliases, label spec and recorded metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api import deps
from api.schemas import ErrorResponse, ModelDetail, ModelList, ModelSummary, ModelVersionInfo
from api.serving import ModelServer
from models.registry import ModelRegistry, RegistryError

router = APIRouter(prefix="/v1/models", tags=["models"])


def _summary(registry: ModelRegistry, server: ModelServer, name: str) -> ModelSummary:
    return ModelSummary(
        name=name,
        aliases=registry.aliases(name),
        versions=registry.versions(name),
        served=server.served().get(name, {}),
    )


@router.get("", response_model=ModelList, responses={401: {"model": ErrorResponse}})
async def list_models(
    principal: deps.Caller,
    registry: deps.Registry,
    server: deps.Server,
) -> ModelList:
    """Every model this API key may use."""

    def read() -> ModelList:
        names = [name for name in registry.models() if principal.allows(name)]
        return ModelList(models=[_summary(registry, server, name) for name in names])

    return await asyncio.to_thread(read)


@router.get(
    "/{name}",
    response_model=ModelDetail,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def get_model(
    name: deps.AllowedModel,
    registry: deps.Registry,
    server: deps.Server,
) -> ModelDetail:
    """A model's versions and aliases, with the label spec of its default version."""

    def read() -> ModelDetail:
        summary = _summary(registry, server, name)
        if not summary.versions:
            raise RegistryError(f"no model named {name!r}")
        by_version: dict[int, list[str]] = {}
        for alias, version in summary.aliases.items():
            by_version.setdefault(version, []).append(alias)
        cards = {v: registry.card(name, v) for v in summary.versions}
        shown = cards[summary.aliases.get(server.settings.default_alias, summary.versions[-1])]
        return ModelDetail(
            **summary.model_dump(),
            label_spec=shown.label_spec,
            image_size=shown.image_size,
            backbone=shown.backbone,
            version_details=[
                ModelVersionInfo(
                    version=v,
                    created_at=card.created_at,
                    parent_version=card.parent_version,
                    aliases=sorted(by_version.get(v, [])),
                    test_metrics={k: v for k, v in card.metrics.get("test", {}).items() if isinstance(v, int | float)},
                )
                for v, card in cards.items()
            ],
        )

    return await asyncio.to_thread(read)
