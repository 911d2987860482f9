"""A whole training run: plan, frozen-feature head, fine-tuning, thresholds, metrics, export; and registering it.

``fit`` trains and exports a candidate; ``train`` (the ``imgclf train`` command) also
registers it: the first version of a name becomes ``production``, later ones ``candidate``
unless ``promote``. Thresholds are chosen on the validation split and metrics measured on
the test split, with the same decision rules serving uses.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from pydantic import BaseModel

from models import evaluation, openvino_runtime, parity
from models.backbones import BACKBONES, build_backbone
from models.export import export_saved_model
from models.label_spec import LabelSpec, Task
from models.manifest import Example, ManifestError
from models.registry import ModelCard, ModelRegistry, check_name
from models.train_config import TrainConfig
from models.training import budget
from models.training.data import (
    TrainingData,
    bad_row,
    decode_error,
    fingerprint,
    full_probabilities,
    load_examples,
    load_images,
    refuse_or_skip,
    resolve_label_spec,
    run_on_images,
)
from models.training.fine_tune import FrozenBottom, caches_bottom, fine_tune_cached, fine_tune_end_to_end
from models.training.heads import build_head, class_weights, compiled_head
from models.training.layers import TTA
from models.training.loop import fit_model
from models.training.report import log_metrics, write_report
from models.training.symmetry import check_flips
from models.training.synthesis import check_request, synthesise
from models.tuning import TunerConfig, tune_head

log = logging.getLogger("imgclf.train")


class TrainResult(BaseModel):
    card: ModelCard
    aliases_set: list[str]
    skipped_rows: list[str]


class Candidate(BaseModel):
    """A trained, exported model not yet in the registry: what the Pusher registers if blessed."""

    card: ModelCard
    saved_model_dir: str
    files: dict[str, str]
    skipped_rows: list[str]
    tuning: dict[str, Any] | None = None


def _frozen_backbone(config: TrainConfig, images: int) -> tuple[keras.Model, int, FrozenBottom | None]:
    """The frozen backbone and its image size; split where fine-tuning starts when that runs on cached
    activations, so the bottom runs once per image for both (synthetic images take the plain way)."""
    if caches_bottom(config) and not config.synthetic:
        image_size = config.image_size or BACKBONES[config.backbone][1]
        passes = images * config.fine_tune_views
        frozen = FrozenBottom(image_size, config.fine_tune_from_block, config.backbone_weights, passes, config.pooling)
        return frozen.backbone, image_size, frozen
    backbone, image_size = build_backbone(config.backbone, config.image_size, config.backbone_weights, config.pooling)
    backbone.trainable = False
    return backbone, image_size, None


def _decodable(
    backbone: keras.Model, frozen: FrozenBottom | None, data: TrainingData, image_size: int, config: TrainConfig
):
    """The backbone's features of every image, and the data without the images that do not decode."""
    if frozen is not None:
        features, decoded = frozen.features(data.examples, data.data)
    else:
        fast = openvino_runtime.frozen(backbone, len(data.data))
        features, decoded = run_on_images(fast, data.data, image_size, "backbone features")
    if len(decoded) < len(data.data):
        undecodable = sorted(set(range(len(data.data))) - set(decoded))
        failed = [bad_row(data.examples[i], decode_error(data.data[i], image_size)) for i in undecodable]
        refuse_or_skip(failed, len(data.examples) + len(data.skipped), config)
        data = data.keep(decoded, failed)
    log.info("splits: %s", data.counts())
    if not data.by_split["train"]:
        raise ManifestError("the train split is empty; add a split column or more rows")
    present = {label for e in data.split("train") for label in e.labels}
    missing = set(data.spec.labels) - present
    if missing and data.spec.task is not Task.MULTILABEL:
        raise ManifestError(f"labels {sorted(missing)} have no training example; add some or drop the label")
    return features, data


def _train_head(features: np.ndarray, data: TrainingData, config: TrainConfig, tuner, out_dir: str):
    """The head on frozen features (after a KerasTuner search of its hyperparameters, when asked)."""
    rows = data.by_split
    train_xy = (features[rows["train"]], data.targets("train"))
    val_xy = (features[rows["validation"]], data.targets("validation")) if rows["validation"] else None
    weights = class_weights(data.spec, data.split("train"), config.class_weights)
    tuning = None
    if tuner is not None and tuner.enabled:
        if val_xy is None:
            log.warning("tuner skipped: it needs a validation split")
        else:
            tuning = tune_head(
                lambda dropout, lr: compiled_head(data.spec, features.shape[1], dropout, lr),
                train_xy,
                val_xy,
                config.epochs,
                config.patience,
                tuner,
                str(Path(out_dir, "tuning")),
                weights,
            )
            config = config.model_copy(update=tuning["best"])
    head = build_head(data.spec, features.shape[1], config.dropout)
    history = fit_model(
        head,
        data.spec,
        train_xy,
        val_xy,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        patience=config.patience,
        phase="head",
        weights=weights,
        batch_size=config.batch_size,
    )
    return head, history, tuning, config


def _fine_tune(
    backbone, frozen: FrozenBottom | None, head, td: TrainingData, config: TrainConfig, **where
) -> tuple[keras.Model, dict, int]:
    """The classifier after fine-tuning (or backbone + head when there is none), its history, the parameters tuned."""
    if not config.fine_tune_epochs:
        return keras.Sequential([backbone, head], name="classifier"), {}, 0
    if caches_bottom(config):
        classifier, history = fine_tune_cached(head, td, config, frozen=frozen, **where)
        return classifier, history, sum(int(np.prod(w.shape)) for w in classifier.trainable_weights)
    classifier, history = fine_tune_end_to_end(backbone, head, td, config, **where)
    return classifier, history, sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)


def _probabilities(classifier, head, features, td: TrainingData, config: TrainConfig, image_size: int, splits):
    """One probability per label for every image of ``splits``, as the exported signature gives them."""
    if config.fine_tune_epochs or config.tta != "none":
        raw = {s: run_on_images(classifier, td.images(s), image_size, f"{s} predictions")[0] for s in splits}
    else:  # the classifier is the frozen backbone plus the head: reuse the features
        raw = {
            s: head.predict(features[td.by_split[s]], verbose=0)
            if td.by_split[s]
            else np.zeros((0, head.output_shape[-1]))
            for s in splits
        }
    return {s: full_probabilities(td.spec, p) for s, p in raw.items()}


def _gate_images(td: TrainingData) -> tuple[str, list[bytes], list[list[str]]]:
    """The images the parity gate runs on: the test split, else validation, else the first training images."""
    for split in ("test", "validation"):
        if td.by_split[split]:
            return split, td.images(split), [e.labels for e in td.split(split)]
    train = td.by_split["train"][: parity.FALLBACK_IMAGES]
    return "train", [td.data[i] for i in train], [td.examples[i].labels for i in train]


def fit(
    config: TrainConfig,
    spec: LabelSpec,
    examples: list[Example],
    data: list[bytes],
    out_dir: str,
    *,
    parent_version: int | None = None,
    skipped: Sequence[str] = (),
    tuner: TunerConfig | None = None,
) -> Candidate:
    """Trains on in-memory images, evaluates on their splits, and exports to ``out_dir``."""
    keras.utils.set_random_seed(config.seed)
    started = time.monotonic()
    td = TrainingData(spec, list(examples), list(data), list(skipped))
    if config.synthetic:
        check_request(config.synthetic, td)  # before any of the expensive work
    plan = budget.plan(config, td)
    if plan is not None:
        config = config.model_copy(update=plan.fields)
    deadline = started + plan.budget_seconds if plan is not None else None

    backbone, image_size, frozen = _frozen_backbone(config, len(td.data))
    features, td = _decodable(backbone, frozen, td, image_size, config)
    real = td
    synthesis = None
    if config.synthetic:
        synthesis = synthesise(td, config.gan, config.synthetic, config.seed)
        added = synthesis.data.data[len(td.data) :]
        features = np.concatenate([features, run_on_images(backbone, added, image_size, "synthetic features")[0]])
        td = synthesis.data
    head, history, tuning, config = _train_head(features, td, config, tuner, out_dir)

    flips = None
    if plan is not None and plan.check_flips:
        flips = check_flips(keras.Sequential([backbone, head]), td, image_size)
        # The check may turn the planned TTA off, never on: a rung without it was costed without it.
        update = {"tta": flips.tta if flips and config.tta != "none" else "none"}
        update["augmentation"] = config.augmentation.model_copy(update={"flip": flips.flip if flips else "none"})
        config = config.model_copy(update=update)

    classifier, fine_history, tuned_parameters = _fine_tune(
        backbone, frozen, head, td, config, image_size=image_size, out_dir=out_dir, deadline=deadline
    )
    for key, values in fine_history.items():
        history.setdefault(key, []).extend(values)
    if config.tta != "none":
        classifier = TTA(classifier, config.tta, name=f"{config.tta}_tta")
    splits = ("validation", "test")
    probabilities = _probabilities(classifier, head, features, td, config, image_size, splits)

    truth = {s: [e.labels for e in td.split(s)] for s in splits}
    spec = td.spec.model_copy(
        update={"thresholds": evaluation.choose_thresholds(td.spec, probabilities["validation"], truth["validation"])}
    )
    metrics = {s: evaluation.evaluate(spec, probabilities[s], truth[s]) for s in splits}
    log_metrics(spec, metrics)

    pictures = {"synthetic_samples.png": synthesis.grid_png} if synthesis else {}
    files = write_report(Path(out_dir, "report"), spec, metrics, history, config.model_name, pictures)
    saved_model_dir = str(Path(out_dir, "saved_model"))
    export_saved_model(classifier, spec, image_size, saved_model_dir)
    runtimes = {}
    if config.openvino != "off":
        split, images, labels = _gate_images(real)
        runtimes["openvino"], artifact = parity.export_checked(
            classifier, spec, image_size, out_dir, saved_model_dir, split, images, labels, config.openvino
        )
        files |= artifact
    seconds = round(time.monotonic() - started, 1)
    if plan is not None:
        log.info("trained in %.1f min of a %.1f min budget", seconds / 60, plan.budget_seconds / 60)
    card = ModelCard(
        name=config.model_name,
        label_spec=spec,
        image_size=image_size,
        backbone=config.backbone,
        metrics=metrics,
        data_fingerprint=fingerprint(real.examples, real.data),
        parent_version=parent_version,
        training={
            **config.model_dump(mode="json", exclude={"model_name", "promote"}),
            "counts": real.counts() | ({"synthetic": len(td.data) - len(real.data)} if synthesis else {}),
            "skipped_rows": len(td.skipped),
            "epochs_run": len(history.get("loss", [])),
            "fine_tune_epochs_run": len(fine_history.get("loss", [])),
            "fine_tuned_backbone_parameters": tuned_parameters,
            "plan": plan.as_dict() if plan is not None else None,
            "flip_check": flips.as_dict() if flips is not None else None,
            "synthesis": synthesis.summary() if synthesis else None,
            "history": history,
            "seconds": seconds,
        },
        runtimes=runtimes,
    )
    return Candidate(card=card, saved_model_dir=saved_model_dir, files=files, skipped_rows=td.skipped, tuning=tuning)


def train(config: TrainConfig, registry: ModelRegistry) -> TrainResult:
    """``imgclf train``: reads a manifest, fits, registers; aliases as the module docstring says."""
    check_name(config.model_name)
    started = time.monotonic()
    production = registry.alias(config.model_name, "production")
    parent = registry.card(config.model_name, production) if production is not None else None
    examples = load_examples(config)
    spec = resolve_label_spec(examples, config, parent)
    log.info("task %s, labels %s, %d examples", spec.task.value, spec.labels, len(examples))
    examples, data, skipped = load_images(examples, config)
    with tempfile.TemporaryDirectory(prefix="imgclf-train-") as tmp:
        candidate = fit(config, spec, examples, data, tmp, parent_version=production, skipped=skipped)
        version = registry.register(candidate.card, candidate.saved_model_dir, candidate.files)
    card = registry.card(config.model_name, version)
    aliases = ["production"] if production is None or config.promote else ["candidate"]
    for alias in aliases:
        registry.set_alias(config.model_name, alias, version)
    log.info(
        "registered %s version %d under %s (alias %s) in %.0fs",
        config.model_name,
        version,
        registry.root,
        ", ".join(aliases),
        time.monotonic() - started,
    )
    return TrainResult(card=card, aliases_set=aliases, skipped_rows=candidate.skipped_rows)
