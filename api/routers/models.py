"""What models the registry has: versions, aliases, label spec and recorded metrics.

A broken version (corrupt card, missing SavedModel) or a corrupt alias file is listed
under ``broken`` / ``broken_aliases`` with the reason; the healthy ones still answer 200.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api import deps
from api.schemas import ErrorResponse, ModelDetail, ModelList, ModelSummary, ModelVersionInfo
from api.serving import ModelServer
from models.errors import BrokenModel
from models.registry import ModelRegistry, RegistryError, VersionStatus

router = APIRouter(prefix="/v1/models", tags=["models"])


def _summary(registry: ModelRegistry, server: ModelServer, name: str) -> tuple[ModelSummary, list[VersionStatus]]:
    statuses = registry.inspect(name)
    aliases, broken_aliases = registry.alias_table(name)
    summary = ModelSummary(
        name=name,
        aliases=aliases,
        versions=[s.version for s in statuses],
        served=server.served().get(name, {}),
        broken={s.version: s.reason for s in statuses if not s.ok},
        broken_aliases=broken_aliases,
    )
    return summary, statuses


@router.get("", response_model=ModelList, responses={401: {"model": ErrorResponse}})
async def list_models(
    principal: deps.Caller,
    registry: deps.Registry,
    server: deps.Server,
) -> ModelList:
    """Every model this API key may use."""

    def read() -> ModelList:
        names = [name for name in registry.models() if principal.allows(name)]
        return ModelList(models=[_summary(registry, server, name)[0] for name in names])

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
        summary, statuses = _summary(registry, server, name)
        if not summary.versions:
            raise RegistryError(f"no model named {name!r}")
        by_version: dict[int, list[str]] = {}
        for alias, version in summary.aliases.items():
            by_version.setdefault(version, []).append(alias)
        cards = {s.version: s.card for s in statuses if s.ok and s.card is not None}
        if not cards:
            reasons = "; ".join(summary.broken.values())
            raise BrokenModel(f"every version of model {name!r} is broken: {reasons}")
        shown = cards.get(summary.aliases.get(server.settings.default_alias, -1)) or cards[max(cards)]
        loaded = server.serving_runtimes(name)
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
                    runtimes=card.runtimes,
                    serving_runtime=loaded.get(v),
                )
                for v, card in cards.items()
            ],
        )

    return await asyncio.to_thread(read)
