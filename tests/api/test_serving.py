"""ModelServer: loading by alias or version, the alias swap, and what stays in memory."""

from __future__ import annotations

import asyncio

import pytest

from api.metrics import ServiceMetrics
from api.serving import ModelServer
from models.registry import ModelRegistry, RegistryError
from tests.helpers import colour_image


def _add_version(root) -> int:
    registry = ModelRegistry(str(root))
    card = registry.card("colours", 1)
    return registry.register(card, str(root / "colours" / "versions" / "1" / "saved_model"))


def test_an_alias_move_loads_the_new_version_once_and_unloads_the_old(api_settings, registry_root):
    server = ModelServer(ModelRegistry(str(registry_root)), api_settings(max_loaded_versions=1), ServiceMetrics())
    loads = []

    async def scenario():
        original = server._load

        async def counting_load(name, version):
            loads.append(version)
            return await original(name, version)

        server._load = counting_load
        await server.start()
        v2 = _add_version(registry_root)
        ModelRegistry(str(registry_root)).set_alias("colours", "production", v2)
        await server.check_aliases()
        model = await server.get("colours")
        answer = await model.predict(colour_image("red", 1))
        await asyncio.sleep(0.2)  # the old version drains and closes
        loaded = sorted(server._loaded)
        await server.stop()
        return v2, model.version, answer, loaded

    v2, served, answer, loaded = asyncio.run(scenario())
    assert served == v2 and answer.shape == (3,)
    assert loads == [1, v2], "each version loads once"
    assert loaded == [("colours", v2)]


def test_versions_load_on_request_and_unknown_ones_are_registry_errors(api_settings, registry_root):
    server = ModelServer(ModelRegistry(str(registry_root)), api_settings(), ServiceMetrics())

    async def scenario():
        await server.start()
        v2 = _add_version(registry_root)
        pinned = await server.get("colours", version=v2)
        with pytest.raises(RegistryError, match="no version 99"):
            await server.get("colours", version=99)
        with pytest.raises(RegistryError, match="no model named 'ghost'"):
            await server.get("ghost")
        served = server.served()
        await server.stop()
        return v2, pinned.version, served

    v2, pinned, served = asyncio.run(scenario())
    assert pinned == v2 and served == {"colours": {"production": 1}}
