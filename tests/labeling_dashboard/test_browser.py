"""The real dashboard, started by ``imgclf dashboard``, in headless Chromium (Debian's package,
driven by Playwright): the queue shows an image and the label buttons; a click labels an image
and a number key labels the next, and the store has both. The screenshot is kept under
var/test-artifacts/ (or $IMGCLF_TEST_ARTIFACTS).
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from imgclf.emulators import free_port
from labeling_dashboard.store import LabelStore, NewPrediction
from models.label_spec import LabelSpec
from tests.helpers import colour_image
from tests.labeling_dashboard.test_app import write_card

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("IMGCLF_TEST_ARTIFACTS", Path(__file__).parents[2] / "var" / "test-artifacts"))


@pytest.fixture
def served(tmp_path):
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Chromium is not installed: apt-get install -y chromium (.ci/run does this)")
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    write_card(tmp_path / "registry", "parts", LabelSpec(task="multiclass", labels=["ok", "scratch", "dent"]))
    store = LabelStore(db)
    uris = []
    for i, colour in enumerate(["red", "green", "blue"]):
        path = tmp_path / f"part{i}.png"
        path.write_bytes(colour_image(colour, i, size=200))
        uris.append(str(path))
        store.add_predictions([NewPrediction(str(path), "parts", 1, ["ok"], {"ok": 0.6, "scratch": 0.3}, 0.9 - i / 10)])
    port = free_port()
    env = {
        **os.environ,
        "IMGCLF_LABELS_DB": db,
        "IMGCLF_MODEL_ROOT": str(tmp_path / "registry"),
        "IMGCLF_DATA_DIR": str(tmp_path / "var"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgclf", "dashboard", "--server.port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"the dashboard did not start: {proc.stdout.read().decode()[-2000:]}")
    try:
        yield url, store, uris
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_dashboard_in_chromium_shows_the_queue_and_a_click_and_a_key_label_images(served):
    from playwright.sync_api import expect, sync_playwright

    url, store, uris = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        expect(page.get_by_role("button", name="2 · scratch")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("button", name="Save and next")).to_be_visible()
        image = page.locator("[data-testid='stImage'] img").first
        expect(image).to_be_visible()
        assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) > 0  # decoded, not broken
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-review.png"), full_page=True)

        page.get_by_role("button", name="2 · scratch").click()
        expect(page.get_by_text("Saved part0.png: scratch")).to_be_visible(timeout=30_000)
        assert store.current(uris[0]).labels == ("scratch",)

        expect(page.get_by_text(uris[1], exact=True)).to_be_visible()  # the next image is on screen
        for _ in range(10):  # until its shortcuts are registered: a press before that does nothing
            page.evaluate("document.activeElement.blur()")  # keys go to the page, as after the mouse moves on
            page.keyboard.press("3")  # the next image, by its number key
            page.wait_for_timeout(2_000)
            if store.current(uris[1]) is not None:
                break
        expect(page.get_by_text("Saved part1.png: dent")).to_be_visible(timeout=30_000)
        assert store.current(uris[1]).labels == ("dent",)
        page.screenshot(path=str(ARTIFACTS / "dashboard-after-labels.png"), full_page=True)
        browser.close()
