"""Training parameters, kept free of TensorFlow so command-line tools can import them cheaply."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from models.label_spec import Task


def parse_duration(text: str | float) -> float:
    """Seconds from '90s', '10m', '1h30m' or a bare number of seconds."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
        if not text.strip() or parts is None:
            raise ValueError(f"cannot read {text!r} as a duration: use e.g. '90s', '10m', '1h30m'")
        h, m, sec = (float(p) if p else 0.0 for p in parts.groups())
        seconds = h * 3600 + m * 60 + sec
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


def _checked(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_checked)]
"""A duration as people write it ('90s', '10m', '1h30m'), checked when the config is read."""


def seconds(duration: str | None) -> float | None:
    return parse_duration(duration) if duration is not None else None


def _settings_default(name: str):
    from models.settings import get_settings

    return getattr(get_settings(), name)


class AugmentationConfig(BaseModel):
    """Keras preprocessing layers applied to training images while fine-tuning (0 turns one off)."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "horizontal_and_vertical"
    rotation: float = Field(0.05, ge=0, le=0.5, description="Fraction of a full turn, either way.")
    zoom: float = Field(0.0, ge=0, lt=1)
    contrast: float = Field(0.1, ge=0, lt=1)
    brightness: float = Field(0.0, ge=0, lt=1)
    transpose: bool = Field(
        False, description="Swap the image's axes half the time; with both flips, every rotation by 90 degrees."
    )


class SynthesisConfig(BaseModel):
    """The conditional GAN behind ``synthetic`` (models/training/synthesis.py)."""

    image_size: int = Field(64, ge=16, le=128, description="Generated side in pixels; a power of two.")
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(32, ge=2)
    learning_rate: float = Field(2e-4, gt=0)
    budget: Duration = Field("5m", description="Stops the GAN's training early when it runs out.")

    @field_validator("image_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"image_size must be a power of two, got {value}")
        return value

    @property
    def budget_seconds(self) -> float:
        return parse_duration(self.budget)


class TrainConfig(BaseModel):
    """Everything `imgclf train` and the retraining Trainer take; a YAML file may hold any of it."""

    model_name: str
    manifest: str | None = Field(None, description="CSV image_uri,labels[,split]")
    data_dir: str | None = Field(None, description="image-folder tree root/<label>/<image>")
    task: Task | None = None
    labels: list[str] | None = Field(None, description="Label order; for binary the second is positive.")
    allow_new_labels: bool = False
    backbone: Literal["efficientnet_lite0", "small_cnn"] = "efficientnet_lite0"
    backbone_weights: str | None = Field(
        None, description="A backbone file from `imgclf pretrain` (local or gs://) instead of the ImageNet weights."
    )
    recipe: Literal["auto", "fast"] = Field(
        default_factory=lambda: _settings_default("train_recipe"),
        description="'auto' picks the best recipe that fits the time budget (models/training/budget.py) for every "
        "recipe field not given; 'fast' trains a head on frozen features only, unless fields say otherwise.",
    )
    budget: Duration | None = Field(
        default_factory=lambda: _settings_default("train_budget"),
        description="Wall-clock budget for 'auto', e.g. '10m', '90s', '1h'; default scales with the data size.",
    )
    image_size: int | None = None
    epochs: int = Field(40, ge=1)
    fine_tune_epochs: int = Field(0, ge=0)
    fine_tune_from_block: int = Field(
        10, ge=0, le=16, description="EfficientNet-Lite0 blocks are 0-15; 16 tunes the head conv only."
    )
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    fine_tune_learning_rate: float = Field(1e-4, gt=0)
    fine_tune_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="'cosine' decays the fine-tuning learning rate to zero over fine_tune_epochs and keeps the "
        "last weights (no early stopping): steadier than picking an epoch on a small validation split.",
    )
    ensemble: int = Field(
        1,
        ge=1,
        le=8,
        description="Cached EfficientNet fine-tuning: train this many top+head copies on the same cached "
        "activations (each with its own shuffles and views) and average them; each costs one more fine-tuning run "
        "and adds the top blocks' cost again at inference.",
    )
    fine_tune_views: int = Field(
        8,
        ge=0,
        description="EfficientNet: augmented copies of each training image whose frozen-bottom activations are "
        "cached, so fine-tuning trains only the top (about 5x faster); 0 fine-tunes end to end.",
    )
    pooling: Literal["average", "gem"] = Field(
        "average",
        description="Global pooling of the backbone's last feature map: 'gem' (generalized mean, p learned from 3) "
        "weighs the strongest responses more, so a small local feature is not averaged away.",
    )
    tta: Literal["none", "flips", "dihedral"] = Field(
        "none",
        description="Average predictions over 4 flips, or all 8 flips and rotations by 90 degrees, inside the "
        "exported graph (4x or 8x the inference cost).",
    )
    openvino: Literal["f32", "bf16", "off"] = Field(
        "f32",
        description="Export an OpenVINO artifact beside the SavedModel, registered only if it passes the parity gate "
        "on the test split (models/parity.py). bf16 (about 2x faster again on CPUs with AMX) is judged by accuracy, "
        "not identical probabilities; off: TensorFlow only.",
    )
    synthetic: dict[str, int] = Field(
        default_factory=dict,
        description="Extra GAN-generated training images per label, e.g. {p67: 300}: rare classes of a single-label "
        "task; never in validation or test.",
    )
    gan: SynthesisConfig = Field(default_factory=SynthesisConfig)
    dropout: float = Field(0.2, ge=0, lt=1)
    patience: int = Field(6, ge=1)
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="'balanced' weighs single-label classes by inverse frequency."
    )
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    seed: int = 0
    skip_bad_rows: bool = False
    promote: bool = False
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000

    @property
    def budget_seconds(self) -> float | None:
        return seconds(self.budget)

    @classmethod
    def from_yaml(cls, path: str | None, **overrides) -> TrainConfig:
        import yaml

        raw = (yaml.safe_load(open(path)) or {}) if path else {}
        return cls(**{**raw, **{k: v for k, v in overrides.items() if v is not None}})
