import pytest
from pydantic import ValidationError

from models.settings import Settings


def test_defaults_run_locally(monkeypatch):
    for name in ("IMGCLF_MODEL_ROOT", "IMGCLF_DATA_DIR", "IMGCLF_DEFAULT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert (s.model_root, s.data_dir, s.default_model, s.default_alias) == ("./var/models", "./var", None, "production")


def test_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("IMGCLF_MODEL_ROOT", "gs://bucket/models")
    monkeypatch.setenv("IMGCLF_MAX_IMAGE_PIXELS", "1000")
    s = Settings(_env_file=None)
    assert s.model_root == "gs://bucket/models" and s.max_image_pixels == 1000


def test_an_invalid_value_names_the_setting(monkeypatch):
    monkeypatch.setenv("IMGCLF_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        Settings(_env_file=None)
