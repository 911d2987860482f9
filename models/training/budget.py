"""Training within a time budget: a short timed probe of this machine, then the best recipe that fits.

The same recipe costs several times more on a laptop than on a workstation, and the image
size scales it again, so the planner does not guess: it times EfficientNet-Lite0's bottom,
its whole forward pass and one training step of its top on a batch of the user's own images,
estimates every rung of a ladder of recipes from those figures and the split sizes, and takes
the best rung whose estimate fits. The ladder is ordered by what measured better on ELPV
(docs/benchmarks.md): a head on frozen features < fine-tuning the top blocks on cached views
< the same at the images' own higher resolution < two fine-tuned tops averaged.
Fields the user gave are kept in every rung; the planner only fills the others.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf
from PIL import Image

from models import efficientnet_lite0
from models.preprocessing import decode_images
from models.train_config import TrainConfig
from models.training.data import TrainingData

log = logging.getLogger("imgclf.train")

PLANNED = (
    "image_size",
    "fine_tune_epochs",
    "fine_tune_from_block",
    "fine_tune_views",
    "fine_tune_schedule",
    "fine_tune_learning_rate",
    "ensemble",
    "tta",
)
PROBE_SIZE = 224
FROM_BLOCK = 5  # blocks 5-15 tuned: the most the cached recipe tunes, and where the probe splits the network
TOP_BLOCK = 15  # the last block alone: most of the gain for a fraction of the training cost (ELPV)
HIGH_RESOLUTION = 300  # used when the images have at least ~that many pixels a side
SAFETY = 0.9  # plan to 90% of the budget: the estimate is a few percent off either way
FIXED_SECONDS = 40.0  # model building, tracing the evaluation, export and report, per run
PER_FIT_SECONDS = 10.0  # tracing a Keras fit of the head
FINE_TUNE_TRACE_SECONDS = 25.0  # tracing the top's training step, per fine-tuned top
TRAIN_STEP_FORWARDS = 2.5  # a training step of the top costs about 2.5 forward passes (measured at batch 32)


def default_budget(train_count: int) -> float:
    """One second per training image plus two minutes, between 3 and 30 minutes."""
    return float(min(max(train_count + 120, 180), 1800))


def fine_tune_epochs_for(train_count: int) -> int:
    """About 28,000 image-steps (16 epochs of ELPV's 1,732 training images), 8 to 30 epochs."""
    return int(min(max(round(28_000 / max(train_count, 1)), 8), 30))


@dataclass(frozen=True)
class Costs:
    """Seconds per image on this machine at ``size``, decoding included, split where the probe split the network."""

    size: int
    bottom: float  # stem and blocks below FROM_BLOCK, forward
    top: float  # blocks FROM_BLOCK-15 and the head conv, forward
    probe_seconds: float = 0.0

    @property
    def forward(self) -> float:
        return self.bottom + self.top

    def at(self, size: int) -> Costs:
        """Convolution cost grows with the pixel count."""
        f = (size / self.size) ** 2
        return Costs(size, self.bottom * f, self.top * f, self.probe_seconds)

    def split(self, from_block: int) -> tuple[float, float]:
        """(caching one view, one training step) per image when blocks from ``from_block`` up are tuned.

        Within the top, time is taken to follow the multiply-adds (the high-resolution bottom does
        not: it is memory-bound, hence the probe times it on its own); a split below FROM_BLOCK
        is costed as at FROM_BLOCK.
        """
        macs = efficientnet_lite0.block_macs(self.size)
        share = sum(macs[max(from_block, FROM_BLOCK) + 1 :]) / sum(macs[FROM_BLOCK + 1 :])
        return self.bottom + self.top * (1 - share), TRAIN_STEP_FORWARDS * self.top * share


@dataclass(frozen=True)
class Counts:
    train: int
    validation: int
    test: int

    @property
    def total(self) -> int:
        return self.train + self.validation + self.test


@dataclass
class Plan:
    rung: str
    fields: dict
    estimate_seconds: float
    budget_seconds: float
    check_flips: bool
    reasons: list[str] = field(default_factory=list)
    costs: dict = field(default_factory=dict)
    alternatives: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_seconds(fields: dict, counts: Counts, costs: Costs, check_flips: bool) -> float:
    c = costs.at(fields["image_size"])
    seconds = FIXED_SECONDS + PER_FIT_SECONDS
    if check_flips:
        seconds += 2 * counts.validation * c.forward
    views = {"none": 1, "flips": 4, "dihedral": 8}[fields["tta"]]
    if fields["fine_tune_epochs"]:
        # the head's features: the bottom once per train and validation image (kept as the first cached view),
        # then the untrained top; test images are only decoded. (With synthetic images the features take a pass
        # of their own over every image: a few percent more, left to the deadline.)
        seconds += (counts.train + counts.validation) * c.forward
        cache, step = c.split(fields["fine_tune_from_block"])
        cached = counts.train * max(fields["fine_tune_views"] - 1, 0)
        per_epoch = counts.train * step + counts.validation * step / TRAIN_STEP_FORWARDS
        seconds += cached * cache + fields["ensemble"] * (
            FINE_TUNE_TRACE_SECONDS + fields["fine_tune_epochs"] * per_epoch
        )
        seconds += (counts.validation + counts.test) * views * c.forward * (1 + 0.35 * (fields["ensemble"] - 1))
    else:
        seconds += counts.total * c.forward  # frozen features for the head
        if views > 1:
            seconds += (counts.validation + counts.test) * views * c.forward
    return seconds


def ladder(counts: Counts, side: int) -> list[tuple[str, dict]]:
    """Recipes from cheapest to best (as measured on ELPV, docs/benchmarks.md)."""
    tuned = {
        "fine_tune_views": 8,
        "fine_tune_schedule": "cosine",
        "fine_tune_learning_rate": 3e-4,
        "fine_tune_epochs": fine_tune_epochs_for(counts.train),
        "tta": "flips",
        "ensemble": 1,
    }
    top_block = {**tuned, "fine_tune_from_block": TOP_BLOCK}
    blocks = {**tuned, "fine_tune_from_block": FROM_BLOCK}
    high = HIGH_RESOLUTION if side >= HIGH_RESOLUTION - 20 else PROBE_SIZE
    rungs = [("frozen head", {"image_size": PROBE_SIZE, "fine_tune_epochs": 0, "tta": "none", "ensemble": 1})]
    rungs.append((f"top block at {PROBE_SIZE} px", {**top_block, "image_size": PROBE_SIZE}))
    if high != PROBE_SIZE:
        rungs.append((f"top block at {high} px", {**top_block, "image_size": high}))
    rungs.append((f"blocks {FROM_BLOCK}-15 at {high} px", {**blocks, "image_size": high}))
    rungs.append((f"2 tops, blocks {FROM_BLOCK}-15, at {high} px", {**blocks, "image_size": high, "ensemble": 2}))
    return rungs


def choose(config: TrainConfig, counts: Counts, side: int, costs: Costs, budget: float) -> Plan:
    """The best rung whose estimate fits ``SAFETY`` of the budget; fields the user set are kept in every rung."""
    given = {k: getattr(config, k) for k in PLANNED if k in config.model_fields_set}
    defaults = {k: getattr(config, k) for k in PLANNED}
    check_flips = "tta" not in given and "augmentation" not in config.model_fields_set
    room = SAFETY * budget - costs.probe_seconds  # the probe's own time counts
    estimates: dict[str, float] = {}
    rungs = [(name, {**defaults, **rung, **given}) for name, rung in ladder(counts, side)]
    for name, fields in rungs:
        estimates[name] = round(estimate_seconds(fields, counts, costs, check_flips), 1)
    fitting = [(name, fields) for name, fields in rungs if estimates[name] <= room]
    name, fields = fitting[-1] if fitting else rungs[0]
    if not fields["fine_tune_epochs"] and "fine_tune_epochs" not in given:
        name, fields = _shrunk(name, fields, given, counts, costs, room, check_flips, estimates)
    reasons = [
        f"budget {budget / 60:.1f} min ({'given' if config.budget else 'default for'} {counts.train} training images)",
        f"probe at {costs.size} px: backbone {1 / costs.forward:.0f} img/s, bottom {1 / costs.bottom:.0f} img/s, "
        f"top training {1 / costs.split(FROM_BLOCK)[1]:.0f} img/s",
        "estimates: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in estimates.items()),
    ]
    if given:
        reasons.append(f"kept as given: {given}")
    return Plan(
        rung=name,
        fields=fields,
        estimate_seconds=round(estimate_seconds(fields, counts, costs, check_flips), 1),
        budget_seconds=budget,
        check_flips=check_flips,
        reasons=reasons,
        costs=asdict(costs),
        alternatives=estimates,
    )


def _shrunk(name, fields, given, counts, costs, room, check_flips, estimates) -> tuple[str, dict]:
    """The cheapest fine-tuning rung with 4 views and as many epochs (at least 4) as fit; else the frozen head."""
    tuned = ladder(counts, 0)[1][1]
    for epochs in range(tuned["fine_tune_epochs"], 3, -1):
        trial = {**fields, **tuned, "fine_tune_views": 4, "fine_tune_epochs": epochs, "ensemble": 1, **given}
        if estimate_seconds(trial, counts, costs, check_flips) <= room:
            shrunk = f"top block at {PROBE_SIZE} px, shortened"
            estimates[shrunk] = round(estimate_seconds(trial, counts, costs, check_flips), 1)
            return shrunk, trial
    return name, fields


def source_side(data: list[bytes], sample: int = 64) -> int:
    """The median short side of the images, from their headers."""
    sides = []
    for raw in data[:: max(1, len(data) // sample)][:sample]:
        try:
            sides.append(min(Image.open(io.BytesIO(raw)).size))
        except Exception:  # noqa: BLE001  (an unreadable image is refused elsewhere)
            continue
    return int(np.median(sides)) if sides else PROBE_SIZE


def probe(images: list[bytes], size: int = PROBE_SIZE, batch: int = 32) -> Costs:
    """Times decode + bottom and the top's forward pass on ``batch`` real images; a training step is
    ``TRAIN_STEP_FORWARDS`` forward passes (timing one would first trace it, about 25 s here)."""
    if not images:
        raise ValueError("the probe needs at least one image")
    started = time.monotonic()
    sample = (list(images) * (batch // len(images) + 1))[:batch]
    bottom, top = efficientnet_lite0.build_split(size, FROM_BLOCK, weights=None)  # weights do not change the time
    raw = tf.constant(sample, dtype=tf.string)

    def timed(fn, repeats: int = 2) -> float:
        fn()  # traces the graph
        t = time.monotonic()
        for _ in range(repeats):
            fn()
        return (time.monotonic() - t) / repeats / batch

    acts = bottom.predict_on_batch(decode_images(raw, size))
    bottom_s = timed(lambda: bottom.predict_on_batch(decode_images(raw, size)))
    top_s = timed(lambda: top.predict_on_batch(acts))
    return Costs(size, bottom_s, top_s, round(time.monotonic() - started, 1))


def plan(config: TrainConfig, data: TrainingData) -> Plan | None:
    """None when the recipe is not planned: ``recipe: fast``, or a backbone the ladder does not cover."""
    if config.recipe != "auto":
        return None
    if config.backbone != "efficientnet_lite0":
        log.info("recipe auto plans EfficientNet-Lite0 training; %s trains as configured", config.backbone)
        return None
    counts = Counts(*(len(data.by_split[s]) for s in ("train", "validation", "test")))
    budget = config.budget_seconds or default_budget(counts.train)
    gan = config.gan.budget_seconds if config.synthetic else 0.0
    if gan:
        log.info("%.1f min of the budget are kept for the GAN (gan.budget)", gan / 60)
    costs = probe(data.images("train") or data.data)
    chosen = choose(config, counts, source_side(data.data), costs, max(budget - gan, 60.0))
    chosen.budget_seconds = budget
    log.info("time budget %.1f min: %s, estimated %.1f min", budget / 60, chosen.rung, chosen.estimate_seconds / 60)
    for line in chosen.reasons:
        log.info("  %s", line)
    return chosen
