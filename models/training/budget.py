"""Training within a time budget: a short timed probe of this machine, then the best recipe that fits.

The same recipe costs several times more on a laptop than on a workstation, and the image
size scales it again, so the planner does not guess: at each size it may train at, it times
EfficientNet-Lite0's bottom and top on a batch of the user's own images, on TensorFlow and on
OpenVINO (which runs the frozen passes), estimates every rung of a ladder of recipes from those
figures and the split sizes, and takes the best rung whose estimate fits. The ladder is ordered
by what measured better on ELPV (docs/benchmarks.md): a head on frozen features < fine-tuning
the top blocks on cached views < the same at the images' own higher resolution < two
fine-tuned tops averaged.
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

from models import efficientnet_lite0, openvino_runtime
from models.preprocessing import decode_images
from models.train_config import AugmentationConfig, TrainConfig
from models.training.data import TrainingData
from models.training.layers import augmenter

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
    "pooling",
)
PROBE_SIZE = 224
FROM_BLOCK = 5  # blocks 5-15 tuned: the most the cached recipe tunes, and where the probe splits the network
TOP_BLOCK = 15  # the last block alone: most of the gain for a fraction of the training cost (ELPV)
HIGH_RESOLUTION = 300  # used when the images have at least ~that many pixels a side
SAFETY = 0.9  # plan to 90% of the budget: the estimate is a few percent off either way
FIXED_SECONDS = 40.0  # model building, tracing the evaluation, export and report, per run
PER_FIT_SECONDS = 10.0  # tracing a Keras fit of the head
FINE_TUNE_TRACE_SECONDS = 25.0  # tracing the top's training step, per fine-tuned top
GATE_SECONDS = 10.0  # converting to OpenVINO and warming both runtimes up for the parity gate
# A training step of the tuned blocks costs this many of their forward passes, by the share of the top's
# multiply-adds they hold: the deep, low-resolution blocks train cheaply, the wide early ones (depthwise
# backward at 38x38 px) dearly. Measured at batch 32 on 2 cores: the top block 2.0 at 300 px and 2.5 at 224,
# blocks 12-15 2.9, blocks 5-15 3.45 at 300 px on one host and 4.1 on a host whose forward pass was twice
# as fast (docs/benchmarks.md); the larger figure is kept where two differ.
TRAIN_STEP_FORWARDS = ((0.19, 2.5), (0.46, 2.9), (1.0, 4.1))


def train_step_forwards(share: float) -> float:
    """``TRAIN_STEP_FORWARDS`` at ``share`` of the top's multiply-adds, interpolated."""
    shares, forwards = zip(*TRAIN_STEP_FORWARDS, strict=True)
    return float(np.interp(share, shares, forwards))


def default_budget(train_count: int) -> float:
    """One second per training image plus two minutes, between 3 and 30 minutes."""
    return float(min(max(train_count + 120, 180), 1800))


# Image-steps of fine-tuning: 16 epochs of ELPV's 1,732 training images for blocks 5-15; the top block alone
# (a GeM top) gained in every paired seed from 24 epochs over 16 (docs/benchmarks.md), for 14 s an epoch here.
IMAGE_STEPS = 28_000
TOP_BLOCK_IMAGE_STEPS = 42_000


def fine_tune_epochs_for(train_count: int, image_steps: int = IMAGE_STEPS) -> int:
    """``image_steps`` over the training images, 8 to 30 epochs: small data gets more passes, large data fewer."""
    return int(min(max(round(image_steps / max(train_count, 1)), 8), 30))


@dataclass(frozen=True)
class Costs:
    """Seconds per image on this machine at ``size``, decoding included, split where the probe split the network:
    on TensorFlow, and on the runtime that runs frozen passes (OpenVINO on a CPU: the activation cache, the
    frozen features, the flip check)."""

    size: int
    bottom: float  # stem and blocks below FROM_BLOCK, forward
    top: float  # blocks FROM_BLOCK-15 and the head conv, forward
    probe_seconds: float = 0.0
    frozen_bottom: float | None = None  # None: as on TensorFlow
    frozen_top: float | None = None
    augment: float = 0.0  # the training augmentation of one cached view (rotation costs most)

    @property
    def forward(self) -> float:
        return self.bottom + self.top

    @property
    def frozen_forward(self) -> float:
        return (self.frozen_bottom or self.bottom) + (self.frozen_top or self.top)

    def at(self, size: int) -> Costs:
        """Scaled by the pixel count: only for a size the probe did not run at (it underestimates the memory-bound
        bottom at higher resolutions: 1.5x too low at 300 px on ELPV, hence ``probe_sizes``)."""
        f = (size / self.size) ** 2
        scaled = {k: v * f for k, v in asdict(self).items() if k not in ("size", "probe_seconds") and v is not None}
        return Costs(size=size, probe_seconds=self.probe_seconds, **scaled)

    def split(self, from_block: int) -> tuple[float, float, float]:
        """(caching one unaugmented view, the tuned part's forward pass, one training step) per image when blocks
        from ``from_block`` up are tuned.

        Within the top, time is taken to follow the multiply-adds; a split below FROM_BLOCK is costed as at
        FROM_BLOCK.
        """
        macs = efficientnet_lite0.block_macs(self.size)
        share = sum(macs[max(from_block, FROM_BLOCK) + 1 :]) / sum(macs[FROM_BLOCK + 1 :])
        cache = (self.frozen_bottom or self.bottom) + (self.frozen_top or self.top) * (1 - share)
        return cache, self.top * share, train_step_forwards(share) * self.top * share


CostTable = dict[int, Costs]  # by image size


def _table(costs: Costs | CostTable) -> CostTable:
    return {costs.size: costs} if isinstance(costs, Costs) else costs


def costs_at(costs: Costs | CostTable, size: int) -> Costs:
    """As measured at ``size`` when the probe ran there, else scaled from the nearest size it ran at."""
    table = _table(costs)
    if size in table:
        return table[size]
    return table[min(table, key=lambda s: abs(s - size))].at(size)


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


def estimate_seconds(fields: dict, counts: Counts, costs: Costs | CostTable, check_flips: bool) -> float:
    c = costs_at(costs, fields["image_size"])
    seconds = FIXED_SECONDS + PER_FIT_SECONDS
    if check_flips:  # validation as is, mirrored and upside down
        seconds += 3 * counts.validation * c.frozen_forward
    views = {"none": 1, "flips": 4, "dihedral": 8}[fields["tta"]]
    if fields["fine_tune_epochs"]:
        # the head's features: the bottom once per train and validation image (kept as the first cached view),
        # then the untrained top; test images are only decoded. (With synthetic images the features take a pass
        # of their own over every image: a few percent more, left to the deadline.)
        cache, tuned, step = c.split(fields["fine_tune_from_block"])
        seconds += (counts.train + counts.validation) * (cache + tuned)
        cached = counts.train * max(fields["fine_tune_views"] - 1, 0)  # augmented views
        per_epoch = counts.train * step + counts.validation * tuned
        seconds += cached * (cache + c.augment) + fields["ensemble"] * (
            FINE_TUNE_TRACE_SECONDS + fields["fine_tune_epochs"] * per_epoch
        )
        # the fine-tuned classifier's predictions run on TensorFlow, as the exported model does
        seconds += (counts.validation + counts.test) * views * c.forward * (1 + 0.35 * (fields["ensemble"] - 1))
    else:
        seconds += counts.total * c.frozen_forward  # frozen features for the head
        if views > 1:
            seconds += (counts.validation + counts.test) * views * c.forward
    # the parity gate runs the exported model on the test split on TensorFlow, then on OpenVINO
    seconds += GATE_SECONDS + counts.test * views * (c.forward + c.frozen_forward)
    return seconds


def high_resolution(side: int) -> int:
    """``HIGH_RESOLUTION`` for images with about that many pixels a side; smaller ones gain nothing from it."""
    return HIGH_RESOLUTION if side >= HIGH_RESOLUTION - 20 else PROBE_SIZE


def ladder(counts: Counts, side: int) -> list[tuple[str, dict]]:
    """Recipes from cheapest to best (as measured on ELPV, docs/benchmarks.md)."""
    tuned = {
        "fine_tune_views": 8,
        "fine_tune_schedule": "cosine",
        "fine_tune_learning_rate": 3e-4,
        "fine_tune_epochs": fine_tune_epochs_for(counts.train),
        "tta": "flips",
        "ensemble": 1,
        "pooling": "gem",
    }
    top_block = {
        **tuned,
        "fine_tune_from_block": TOP_BLOCK,
        "fine_tune_epochs": fine_tune_epochs_for(counts.train, TOP_BLOCK_IMAGE_STEPS),
    }
    blocks = {**tuned, "fine_tune_from_block": FROM_BLOCK}
    high = high_resolution(side)
    rungs = [("frozen head", {"image_size": PROBE_SIZE, "fine_tune_epochs": 0, "tta": "none", "ensemble": 1})]
    rungs.append((f"top block at {PROBE_SIZE} px", {**top_block, "image_size": PROBE_SIZE}))
    if high != PROBE_SIZE:
        rungs.append((f"top block at {high} px", {**top_block, "image_size": high}))
    rungs.append((f"blocks {FROM_BLOCK}-15 at {high} px", {**blocks, "image_size": high}))
    rungs.append((f"2 tops, blocks {FROM_BLOCK}-15, at {high} px", {**blocks, "image_size": high, "ensemble": 2}))
    return rungs


def choose(config: TrainConfig, counts: Counts, side: int, costs: Costs | CostTable, budget: float) -> Plan:
    """The best rung whose estimate fits ``SAFETY`` of the budget; fields the user set are kept in every rung."""
    table = _table(costs)
    given = {k: getattr(config, k) for k in PLANNED if k in config.model_fields_set}
    defaults = {k: getattr(config, k) for k in PLANNED}
    check_flips = "tta" not in given and "augmentation" not in config.model_fields_set
    room = SAFETY * budget - sum(c.probe_seconds for c in table.values())  # the probe's own time counts
    estimates: dict[str, float] = {}
    rungs = [(name, {**defaults, **rung, **given}) for name, rung in ladder(counts, side)]
    for name, fields in rungs:
        estimates[name] = round(estimate_seconds(fields, counts, table, check_flips), 1)
    fitting = [(name, fields) for name, fields in rungs if estimates[name] <= room]
    name, fields = fitting[-1] if fitting else rungs[0]
    if not fields["fine_tune_epochs"] and "fine_tune_epochs" not in given:
        name, fields = _shrunk(name, fields, given, counts, table, room, check_flips, estimates)
    reasons = [
        f"budget {budget / 60:.1f} min ({'given' if config.budget else 'default for'} {counts.train} training images)",
        *(
            f"probe at {c.size} px: backbone {1 / c.forward:.0f} img/s, frozen (activation cache) "
            f"{1 / c.frozen_forward:.0f} img/s, top training {1 / c.split(FROM_BLOCK)[2]:.0f} img/s"
            for c in table.values()
        ),
        "estimates: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in estimates.items()),
    ]
    if given:
        reasons.append(f"kept as given: {given}")
    return Plan(
        rung=name,
        fields=fields,
        estimate_seconds=round(estimate_seconds(fields, counts, table, check_flips), 1),
        budget_seconds=budget,
        check_flips=check_flips,
        reasons=reasons,
        costs={str(size): asdict(c) for size, c in table.items()},
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


def probe_sizes(side: int) -> list[int]:
    """The sizes the ladder trains at for images of this ``side``: each is timed, not extrapolated."""
    return sorted({PROBE_SIZE, high_resolution(side)})


def probe(
    images: list[bytes],
    size: int = PROBE_SIZE,
    batch: int = 32,
    augmentation: AugmentationConfig | None = None,
    passes: int | None = None,
) -> Costs:
    """Times decoding, ``augmentation``, the bottom and the top's forward pass on ``batch`` real images, on
    TensorFlow and on the runtime that frozen passes over ``passes`` images will use (``openvino_runtime.frozen``);
    a training step is ``TRAIN_STEP_FORWARDS`` forward passes (timing one would first trace it, about 25 s here)."""
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

    decode = tf.function(lambda b: decode_images(b, size))  # as the training passes run it: a graph, in parallel
    decode_s = timed(lambda: decode(raw))
    x = decode(raw)
    acts = bottom.predict_on_batch(x)
    costs = {"bottom": timed(lambda: bottom.predict_on_batch(x)), "top": timed(lambda: top.predict_on_batch(acts))}
    frozen_bottom, frozen_top = openvino_runtime.frozen(bottom, passes), openvino_runtime.frozen(top, passes)
    costs["frozen_bottom"] = timed(lambda: frozen_bottom.predict_on_batch(x))
    costs["frozen_top"] = timed(lambda: frozen_top.predict_on_batch(acts))
    if augmentation is not None:
        augment = augmenter(augmentation.model_copy(update={"flip": "horizontal_and_vertical"}), seed=0)
        augmented = tf.function(lambda b: augment(b, training=True))
        costs["augment"] = timed(lambda: augmented(x))
    costs["bottom"] += decode_s
    costs["frozen_bottom"] += decode_s
    return Costs(size=size, probe_seconds=round(time.monotonic() - started, 1), **costs)


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
    side = source_side(data.data)
    images = data.images("train") or data.data
    costs = {
        size: probe(images, size, augmentation=config.augmentation, passes=len(data.data)) for size in probe_sizes(side)
    }
    chosen = choose(config, counts, side, costs, max(budget - gan, 60.0))
    chosen.budget_seconds = budget
    log.info("time budget %.1f min: %s, estimated %.1f min", budget / 60, chosen.rung, chosen.estimate_seconds / 60)
    for line in chosen.reasons:
        log.info("  %s", line)
    return chosen
