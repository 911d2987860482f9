"""`imgclf pretrain` parameters, kept free of TensorFlow (like ``train_config``) so the CLI can show their defaults
cheaply. The method and the reasons for these defaults: ``models/training/pretrain.py`` and docs/training.md."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from models.train_config import Duration, seconds


class PretrainConfig(BaseModel):
    """What `imgclf pretrain` takes; defaults suit a few hundred to a few thousand images on a CPU."""

    epochs: int = Field(10, ge=1, description="Passes over the images, each on new pairs of cached views.")
    batch_size: int = Field(32, ge=2, description="Images per step (two views each).")
    learning_rate: float = Field(
        1e-4, gt=0, description="Adam, top blocks: warmed up over the first epoch, then a cosine decay to zero."
    )
    head_learning_rate: float = Field(1e-3, gt=0, description="Adam, projector and predictor: constant.")
    views: int = Field(
        6, ge=2, description="Augmented views cached per image (the first unaugmented); pairs are drawn among them."
    )
    from_block: int = Field(
        5, ge=1, le=16, description="EfficientNet-Lite0 blocks from here (0-15; 16: head conv only) are trained."
    )
    image_size: int = Field(224, ge=32)
    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "horizontal", description="Flips between views teach invariance to them: 'none' for text or digits."
    )
    crop: float = Field(
        0.55, ge=0, lt=1, description="Random zoom-in, up to this fraction of each side cut away (then translated)."
    )
    seed: int = 0
    budget: Duration | None = Field(None, description="Wall-clock limit, e.g. '10m': no epoch starts after it.")
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000

    @property
    def budget_seconds(self) -> float | None:
        return seconds(self.budget)
