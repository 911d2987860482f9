"""Images for the page: shown from local paths and gs://, or a reason; never from internal stores."""

from labeling_dashboard import images
from models import storage
from models.settings import Settings
from tests.helpers import colour_image


def test_images_on_gcs_are_shown_and_a_broken_one_says_why(gcs_emulator):
    storage.write_bytes("gs://bucket/shown/red.png", colour_image("red", 0, size=300))
    storage.write_bytes("gs://bucket/shown/bad.png", b"\x89PNG\r\n\x1a\n truncated")
    shown = images.load("gs://bucket/shown/red.png", Settings(), 160)
    assert shown.data and shown.error is None
    assert images.load("gs://bucket/shown/bad.png", Settings(), 160).data is None
    assert "no such object" in images.load("gs://bucket/shown/gone.png", Settings(), 160).error


def test_an_image_inside_the_registry_is_not_read(tmp_path):
    settings = Settings(model_root=str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "x.png").write_bytes(colour_image("red", 0))
    shown = images.load(str(tmp_path / "models" / "x.png"), settings, 160)
    assert shown.data is None and "the model registry" in shown.error
