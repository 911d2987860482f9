"""The models the service holds in memory, and hot reload of the aliases it serves.

A request asks for a model by alias (``production`` by default) or by version. Each
loaded version has its own ``DynamicBatcher``. A watcher re-reads every served alias;
when one moves, the new version is loaded and warmed up off the event loop, then the
alias is swapped in one step. Requests already holding the old version finish on it,
and it is unloaded once idle.

A broken version (unreadable card, missing or unloadable SavedModel) raises
``BrokenModel``; the failure is remembered for ``broken_retry_s`` so requests do not
retry the load in a tight loop, and it never stops other models from loading or serving.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from api.batching import DynamicBatcher
from api.metrics import ServiceMetrics
from api.settings import ApiSettings
from models import runtimes
from models.errors import BrokenModel, describe
from models.prediction import ImageError
from models.registry import ModelCard, ModelRegistry, RegistryError

log = logging.getLogger("imgclf.api.serving")


@dataclass
class LoadedModel:
    name: str
    version: int
    card: ModelCard
    batcher: DynamicBatcher
    runner: runtimes.Runner
    loaded_at: float = field(default_factory=time.time)
    in_flight: int = 0

    @asynccontextmanager
    async def use(self) -> AsyncIterator[LoadedModel]:
        self.in_flight += 1
        try:
            yield self
        finally:
            self.in_flight -= 1

    async def predict(self, image: bytes) -> np.ndarray:
        return await self.batcher.predict(image)


def warmup_image(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(buffer, "JPEG")
    return buffer.getvalue()


class ModelServer:
    broken_retry_s: float = 30.0  # how long a failed load is remembered before it is tried again

    def __init__(self, registry: ModelRegistry, settings: ApiSettings, metrics: ServiceMetrics):
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self._loaded: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()  # least recently used first
        self._aliases: dict[tuple[str, str], int] = {}
        self._loading: dict[tuple[str, int], asyncio.Task] = {}
        self._preload: list[tuple[str, str]] = []
        self._watcher: asyncio.Task | None = None
        self._broken: dict[tuple[str, int], tuple[str, float]] = {}  # version -> (reason, retry after)
        self._problems: dict[tuple[str, str], str] = {}  # served alias -> why it is not (or no longer) moving
        self.startup_error: str | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Loads the configured models (all with the default alias if none are named), then watches."""
        alias = self.settings.default_alias
        errors = []
        try:
            names = self.settings.serve_models or [
                name for name in await asyncio.to_thread(self.registry.models) if self._has_alias(name, alias)
            ]
            self._preload = [(name, alias) for name in names]
        except Exception as e:  # readyz reports it; the service stays up
            errors.append(f"{type(e).__name__}: {e}")
        for name, alias in self._preload:  # one model failing never stops the others
            try:
                await self.get(name, alias=alias)
            except BrokenModel as e:  # readyz names it; the watcher retries it
                self._problems[(name, alias)] = f"broken: {e}"
                log.error("not serving %s@%s: %s", name, alias, e)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
        if errors:
            self.startup_error = "; ".join(errors)
            log.error("could not load the served models: %s", self.startup_error)
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="alias-watcher")

    def _has_alias(self, name: str, alias: str) -> bool:
        try:
            return self.registry.alias(name, alias) is not None
        except BrokenModel:  # a corrupt alias file: served, and reported as broken
            return True

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for model in list(self._loaded.values()):
            await model.batcher.close()
        self._loaded.clear()

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Ready when every preloaded alias is loaded and warm or broken, and at least one serves.

        A broken served alias is reported with its reason but does not make the process
        unready: the healthy models it serves keep taking traffic.
        """
        status = {}
        serving = False
        pending = False
        for name, alias in self._preload:
            version = self._aliases.get((name, alias))
            problem = self._problems.get((name, alias))
            if version is not None:
                serving = True
                status[f"{name}@{alias}"] = f"version {version}" + (f" ({problem})" if problem else "")
            elif problem:
                status[f"{name}@{alias}"] = problem
            else:
                pending = True
                status[f"{name}@{alias}"] = "loading"
        if self.startup_error:
            status["error"] = self.startup_error
        ready = not self.startup_error and serving and not pending
        if not self._preload and not self.startup_error:
            status["error"] = f"no model has the alias {self.settings.default_alias!r} under {self.registry.root}"
        return ready, status

    def served(self) -> dict[str, dict[str, int]]:
        """model -> {alias: version} for every alias being watched."""
        out: dict[str, dict[str, int]] = {}
        for (name, alias), version in self._aliases.items():
            out.setdefault(name, {})[alias] = version
        return out

    def serving_runtimes(self, name: str) -> dict[int, str]:
        """version -> the runtime it runs on, for every loaded version of ``name``."""
        return {version: model.runner.runtime for (n, version), model in self._loaded.items() if n == name}

    # ------------------------------------------------------------ lookup

    async def get(self, name: str, alias: str | None = None, version: int | None = None) -> LoadedModel:
        """A loaded version: by number, else by alias (watched from now on). RegistryError if unknown."""
        if version is None:
            alias = alias or self.settings.default_alias
            version = self._aliases.get((name, alias))
            if version is None:
                version = await asyncio.to_thread(self.registry.alias, name, alias)
                if version is None:
                    if not await asyncio.to_thread(self.registry.versions, name):
                        raise RegistryError(f"no model named {name!r}")
                    raise RegistryError(f"model {name!r} has no alias {alias!r}")
                model = await self._ensure_loaded(name, version)
                self._point(name, alias, version)
                return model
        return await self._ensure_loaded(name, version)

    async def _ensure_loaded(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        broken = self._broken.get(key)
        if broken is not None and time.monotonic() < broken[1]:  # a fresh error each time: no growing traceback
            raise BrokenModel(broken[0])
        if key not in self._loading:  # one load per version, however many requests wait for it
            self._loading[key] = asyncio.get_running_loop().create_task(self._load(name, version))
        try:
            return await asyncio.shield(self._loading[key])
        except BrokenModel as e:
            if key not in self._broken or self._broken[key][1] <= time.monotonic():
                log.error("%s; not trying it again for %.0fs", e, self.broken_retry_s)
            self._broken[key] = (str(e), time.monotonic() + self.broken_retry_s)
            raise
        finally:
            if self._loading.get(key) is not None and self._loading[key].done():
                self._loading.pop(key, None)

    async def _load(self, name: str, version: int) -> LoadedModel:
        started = time.monotonic()
        # RegistryError if it does not exist; BrokenModel for a corrupt card or no saved_model.pb
        resolved = await asyncio.to_thread(self.registry.resolve, name, None, version)
        card = resolved.card
        broken = f"model {name!r} version {version} is broken"
        try:
            runner = await asyncio.to_thread(runtimes.load, resolved, self.settings.runtime)
        except runtimes.RuntimeUnavailable as e:  # IMGCLF_RUNTIME=openvino and this version has no artifact
            raise BrokenModel(f"model {name!r} version {version} cannot be served: {e}") from e
        except Exception as e:  # a corrupt graph or variables: the version is at fault, not the request
            artifact = "OpenVINO artifact" if self.settings.runtime == "openvino" else "SavedModel"
            raise BrokenModel(f"{broken}: its {artifact} does not load: {describe(e)}") from e
        image = warmup_image(card.image_size)
        for size in sorted({1, self.settings.max_batch_size}):  # first calls of each shape are slow
            try:
                results = await asyncio.to_thread(runner.predict_images, [image] * size)
            except Exception as e:  # e.g. no serving signature
                raise BrokenModel(f"{broken}: it fails on a warm-up image: {describe(e)}") from e
            failed = next((r for r in results if isinstance(r, ImageError)), None)
            if failed is not None:  # the warm-up image is valid, so the model is at fault
                raise BrokenModel(f"{broken}: it fails on a warm-up image: {describe(failed)}")
        label = f"{name}/v{version}"
        batcher = DynamicBatcher(
            runner.predict_images,
            label,
            self.settings.max_batch_size,
            self.settings.max_queue_delay_ms / 1000,
            on_batch=lambda size, seconds: (
                self.metrics.batch_size.labels(name).observe(size),
                self.metrics.inference.labels(name).observe(seconds),
            ),
            on_queue=lambda delta: self.metrics.queue_depth.labels(name).inc(delta),
        )
        model = LoadedModel(name, version, card, batcher, runner)
        self._loaded[(name, version)] = model
        self.metrics.loaded_versions.set(len(self._loaded))
        log.info(
            "loaded and warmed %s on %s in %.1fs",
            label,
            runtimes.describe(card, runner.runtime),
            time.monotonic() - started,
        )
        await self._evict(keep=(name, version))
        return model

    def _point(self, name: str, alias: str, version: int) -> None:
        self._aliases[(name, alias)] = version
        self._problems.pop((name, alias), None)
        self.metrics.model_version.labels(name, alias).set(version)

    async def _evict(self, keep: tuple[str, int]) -> None:
        """Unloads least recently used versions no alias points at, beyond the configured number.

        ``keep`` is the version just loaded: an alias may be about to point at it.
        """
        pointed = {(n, v) for (n, _), v in self._aliases.items()} | {keep}
        spare = [key for key in self._loaded if key not in pointed]
        while len(self._loaded) > self.settings.max_loaded_versions and spare:
            await self._retire(spare.pop(0))

    async def _retire(self, key: tuple[str, int]) -> None:
        model = self._loaded.pop(key, None)
        if model is None:
            return
        self.metrics.loaded_versions.set(len(self._loaded))

        async def drain() -> None:
            while model.in_flight:
                await asyncio.sleep(0.05)
            await model.batcher.close()
            log.info("unloaded %s/v%d", model.name, model.version)

        asyncio.get_running_loop().create_task(drain())

    # ------------------------------------------------------------ hot reload

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            try:
                await self.check_aliases()
            except Exception:  # a registry hiccup must not kill the watcher
                log.exception("alias check failed; serving what is loaded")

    def _note_problem(self, key: tuple[str, str], problem: str) -> None:
        if self._problems.get(key) != problem:  # log a change, not every check
            log.error("%s@%s: %s", *key, problem)
        self._problems[key] = problem

    async def check_aliases(self) -> None:
        """Moves each served alias to the version it now names; a broken one only affects itself."""
        for name, alias in self._preload:  # served aliases that never loaded: try again (the broken cache paces it)
            if (name, alias) in self._problems and (name, alias) not in self._aliases:
                try:
                    await self.get(name, alias=alias)
                except BrokenModel as e:
                    self._note_problem((name, alias), f"broken: {e}")
                except Exception as e:
                    self._note_problem((name, alias), f"{type(e).__name__}: {e}")
        for (name, alias), current in list(self._aliases.items()):
            try:
                version = await asyncio.to_thread(self.registry.alias, name, alias)
            except BrokenModel as e:
                self._note_problem((name, alias), f"still serving it: {e}")
                continue
            if version is None or version == current:
                if version == current:
                    self._problems.pop((name, alias), None)
                continue
            log.info("%s@%s moved from v%d to v%d: loading it", name, alias, current, version)
            try:
                await self._ensure_loaded(name, version)
            except BrokenModel as e:
                self._note_problem((name, alias), f"not moving to version {version}: {e}")
                continue
            except Exception:
                log.exception("could not load %s/v%d; still serving v%d", name, version, current)
                continue
            self._point(name, alias, version)
            log.info("%s@%s now serves v%d", name, alias, version)
            if not any(v == current and n == name for (n, _), v in self._aliases.items()):
                await self._retire((name, current))
