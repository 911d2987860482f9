"""Hot reload under load: moving the production alias swaps versions with no failed request."""

from __future__ import annotations

import threading
import time

import httpx

from models.registry import ModelRegistry
from tests.api.conftest import ServerThread
from tests.helpers import colour_image


def _register_copy_of_v1(root) -> int:
    registry = ModelRegistry(str(root))
    card = registry.card("colours", 1).model_copy(update={"parent_version": 1})
    return registry.register(card, str(root / "colours" / "versions" / "1" / "saved_model"))


def test_alias_move_swaps_versions_without_a_failed_request(api_settings, registry_root):
    image = colour_image("red", 5)
    statuses: list[int] = []
    versions: list[int] = []
    stop = threading.Event()

    with ServerThread(api_settings(reload_interval_s=0.1, max_loaded_versions=1)) as server:

        def client_loop():
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    r = client.post("/v1/models/colours:classify", files={"image": ("r.png", image)})
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        versions.append(r.json()["model_version"])

        clients = [threading.Thread(target=client_loop) for _ in range(8)]
        for t in clients:
            t.start()
        time.sleep(1.0)
        v2 = _register_copy_of_v1(registry_root)
        ModelRegistry(str(registry_root)).set_alias("colours", "production", v2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not versions or versions[-1] != v2):
            time.sleep(0.1)
        time.sleep(1.0)  # keep the load on after the swap
        stop.set()
        for t in clients:
            t.join()
        metrics = httpx.get(f"{server.url}/metrics").text
        ready = httpx.get(f"{server.url}/readyz").json()

    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert versions[0] == 1 and versions[-1] == v2
    assert versions.count(1) > 0 and versions.count(v2) > 0
    assert ready["models"] == {"colours@production": f"version {v2}"}
    assert "imgclf_loaded_model_versions 1.0" in metrics, "the old version was unloaded once idle"
