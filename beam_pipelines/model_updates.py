"""Live model refresh: a running pipeline follows a registry alias to each new version.

Every ``interval_s`` seconds (per process, not per element) the alias is read; when it
points at a new version, that version is loaded and the next batch runs on it. A version
that cannot be resolved or loaded (unfinished, broken card, corrupt SavedModel) is logged
and skipped: the version serving now keeps serving. Each result carries the URI of the
version that produced it, so records name their version and use its label spec.

Why not RunInference's ``model_metadata_pcoll`` side input: the local streaming runner
(BundleBasedDirectRunner, Beam 2.77) holds a main input until a side input's window is
complete, and a refresh side input lives in the global window, which never completes, so
the pipeline stalls before its first message; and ``PeriodicImpulse``, its usual clock,
is a splittable DoFn that runner refuses ("_GroupByKeyOnly was not replaced as
expected"). Polling inside the model handler works the same on every runner, Dataflow
included, and is what the tests exercise. docs/streaming.md has the details.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from models.errors import ImgclfError, describe
from models.registry import ModelRegistry

log = logging.getLogger("imgclf.stream")


@dataclass(frozen=True)
class FollowAlias:
    """Which alias to follow and how often to read it."""

    model_root: str
    name: str
    alias: str
    interval_s: float = 10.0


_state: dict[FollowAlias, tuple[float, str | None]] = {}  # per process: (next read, last URI seen)
_lock = threading.Lock()


def alias_target(follow: FollowAlias) -> str | None:
    """The SavedModel URI the alias points at when a read is due; None between reads or if unusable.

    Reads are shared by every handler in the process, so a runner that makes a new DoFn
    per bundle does not read the registry per bundle.
    """
    now = time.monotonic()
    with _lock:
        due, last = _state.get(follow, (0.0, None))
        if now < due:
            return None
        _state[follow] = (now + follow.interval_s, last)
    try:
        model = ModelRegistry(follow.model_root).resolve(follow.name, follow.alias)
    except ImgclfError as e:
        log.error(
            "alias %r of model %r is not usable, so the version serving now keeps serving: %s",
            follow.alias,
            follow.name,
            describe(e),
        )
        return None
    with _lock:
        due, last = _state[follow]
        _state[follow] = (due, model.saved_model_uri)
    if model.saved_model_uri != last and last is not None:
        log.info("alias %r of %r now points at version %d", follow.alias, follow.name, model.version)
    return model.saved_model_uri
