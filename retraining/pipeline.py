"""The retraining run: ExampleGen -> DataValidation -> Trainer -> Evaluator -> InfraValidator -> Pusher.

TFX's contracts without TFX: each component reads and writes artifacts under the run's
folder, the lineage store records every execution, and the Pusher moves ``production``
only for a blessed, infra-validated candidate. Production is touched by one atomic alias
write at the very end, so a run killed anywhere before it changes nothing; the next run
marks the dead one abandoned and starts in a fresh folder.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from beam_pipelines import example_gen
from models import storage
from models.registry import ModelRegistry, check_name
from models.settings import get_settings
from models.train_config import TrainConfig
from models.tuning import TunerConfig
from retraining.corrections import for_run
from retraining.evaluator import EvaluationConfig, evaluate_candidate
from retraining.infra_validator import InfraValidator
from retraining.lineage import LineageStore
from retraining.lock import run_lock
from retraining.trainer import train_candidate
from retraining.validation import ValidationConfig, validate

log = logging.getLogger("imgclf.retrain")


class RetrainConfig(BaseModel):
    model_name: str
    manifest: str
    corrections: str | None = None
    model_root: str = Field(default_factory=lambda: get_settings().model_root)
    work_dir: str = Field(default_factory=lambda: f"{get_settings().data_dir}/retraining")
    lineage_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in work_dir.")
    examples_root: str | None = Field(
        None,
        description="Where ExampleGen writes each run's TFRecords (<root>/run-<id>), local or gs:// beside the "
        "images; the Trainer reads them from there. Default: the run's folder in work_dir.",
    )
    example_gen_args: list[str] = Field(
        default_factory=list,
        description="Beam flags for ExampleGen, e.g. --runner=DataflowRunner --project=... (then examples_root "
        "must be gs://).",
    )
    trainer: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields (epochs, backbone, ...).")
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tuner: TunerConfig = Field(default_factory=TunerConfig)

    @classmethod
    def from_yaml(cls, path: str | None, **overrides: Any) -> RetrainConfig:
        raw = yaml.safe_load(Path(path).read_text()) if path else {}
        return cls(**{**(raw or {}), **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def lineage(self) -> str:
        return self.lineage_url or f"sqlite:///{Path(self.work_dir, 'lineage.db')}"


class RunSummary(BaseModel):
    run_id: int
    status: str
    run_dir: str
    counts: dict[str, Any] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=dict)
    candidate: dict[str, float] = Field(default_factory=dict)
    production: dict[str, float] | None = None
    production_version: int | None = None
    blessed: bool = False
    reasons: list[str] = Field(default_factory=list)
    infra: str | None = None
    tuning: dict[str, Any] | None = None
    pushed_version: int | None = None
    seconds: float = 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _headline(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    if metrics is None:
        return None
    # 'accuracy' is exact match for multilabel; the per-label figure rides along, named as such.
    return {k: round(metrics[k], 4) for k in ("accuracy", "per_label_accuracy", "macro_f1") if k in metrics}


def run_once(config: RetrainConfig, trigger: str = "manual") -> RunSummary:
    """One whole run under the model's lock; returns its summary (also stored in the lineage)."""
    check_name(config.model_name)
    with run_lock(config.work_dir, config.model_name):
        store = LineageStore(config.lineage)
        run_id = store.start_run(config.model_name, config.model_dump(mode="json"), trigger)
        summary = RunSummary(run_id=run_id, status="running", run_dir=str(Path(config.work_dir, "runs", str(run_id))))
        started = time.monotonic()
        try:
            with InfraValidator() as infra_validator:
                _run(config, store, summary, infra_validator)
        except BaseException as e:
            summary.status, summary.reasons = "failed", summary.reasons + [f"{type(e).__name__}: {e}"]
            store.finish_run(run_id, "failed", summary.model_dump(mode="json"))
            raise
        summary.seconds = round(time.monotonic() - started, 1)
        store.finish_run(run_id, summary.status, summary.model_dump(mode="json"))
        return summary


def _run(config: RetrainConfig, store: LineageStore, summary: RunSummary, infra_validator: InfraValidator) -> None:
    run_dir = Path(summary.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    registry = ModelRegistry(config.model_root)
    production_version = registry.alias(config.model_name, "production")
    production = registry.resolve(config.model_name, version=production_version) if production_version else None

    log.info(
        "[1/6] ExampleGen: %s%s", config.manifest, f" + corrections {config.corrections}" if config.corrections else ""
    )
    t = _now()
    examples_dir = (
        f"{config.examples_root.rstrip('/')}/run-{summary.run_id}"
        if config.examples_root
        else str(run_dir / "examples")
    )
    if storage.is_dir(examples_dir):
        raise FileExistsError(f"{examples_dir} already exists; ExampleGen writes only to a new folder")
    argv = [f"--manifest={config.manifest}", f"--output_dir={examples_dir}", *config.example_gen_args]
    corrections, added_labels = for_run(config.corrections, run_dir)
    if corrections:
        argv.append(f"--corrections={corrections}")
    elif config.corrections:
        log.info("      no corrections in %s yet", config.corrections)
    stats = example_gen.run(argv)
    summary.counts = {s: v["examples"] for s, v in stats["splits"].items()} | {"unreadable": stats["unreadable"]}
    log.info("      examples %s", summary.counts)
    examples_art, stats_art = store.record(
        summary.run_id,
        "ExampleGen",
        {"manifest": config.manifest, "corrections": config.corrections, "corrections_read": corrections},
        [],
        [("examples", examples_dir, summary.counts), ("statistics", f"{examples_dir}/statistics.json", {})],
        t,
    )

    log.info("[2/6] DataValidation")
    t = _now()
    previous_art = store.latest(config.model_name, "statistics")
    previous = (
        json.loads(storage.read_text(previous_art.uri)) if previous_art and storage.exists(previous_art.uri) else None
    )
    report = validate(
        stats, production.card.label_spec if production else None, config.validation, previous, added_labels
    )
    report_path = run_dir / "validation.json"
    report_path.write_text(report.model_dump_json(indent=2))
    summary.validation = {"errors": report.errors, "warnings": report.warnings}
    for line in report.warnings:
        log.warning("      warning: %s", line)
    (validation_art,) = store.record(
        summary.run_id,
        "DataValidation",
        config.validation.model_dump(),
        [stats_art],
        [("validation_report", str(report_path), {"ok": report.ok})],
        t,
    )
    if not report.ok:
        for line in report.errors:
            log.error("      error: %s", line)
        summary.status, summary.reasons = "failed", ["data validation failed"] + report.errors
        return

    log.info("[3/6] Trainer%s", " (with Tuner)" if config.tuner.enabled else "")
    t = _now()
    infra_validator.start()  # its fresh process loads TensorFlow while the Trainer trains
    train_config = TrainConfig(model_name=config.model_name, **config.trainer)
    candidate, examples, data = train_candidate(
        train_config, examples_dir, production.card if production else None, str(run_dir / "candidate"), config.tuner
    )
    trainer_inputs = [examples_art, validation_art]
    if candidate.tuning:
        best_path = run_dir / "best_hyperparameters.json"
        best_path.write_text(json.dumps(candidate.tuning, indent=2))
        summary.tuning = candidate.tuning["best"]
        trainer_inputs += store.record(
            summary.run_id,
            "Tuner",
            config.tuner.model_dump(),
            [examples_art, validation_art],
            [("best_hyperparameters", str(best_path), candidate.tuning["best"])],
            t,
        )
    (model_art,) = store.record(
        summary.run_id,
        "Trainer",
        train_config.model_dump(mode="json"),
        trainer_inputs,
        [("model", candidate.saved_model_dir, {"validation": _headline(candidate.card.metrics.get("validation"))})],
        t,
    )

    log.info("[4/6] Evaluator: candidate vs %s", f"production v{production.version}" if production else "no production")
    t = _now()
    test = [i for i, e in enumerate(examples) if e.split == "test"]
    result = evaluate_candidate(
        candidate.card,
        candidate.saved_model_dir,
        production,
        [data[i] for i in test],
        [examples[i].labels for i in test],
        config.evaluation,
        str(run_dir / "evaluation"),
    )
    summary.candidate, summary.production = _headline(result.candidate), _headline(result.production)
    summary.production_version, summary.blessed, summary.reasons = (
        result.production_version,
        result.blessed,
        result.reasons,
    )
    log.info(
        "      candidate %s, production %s: %s",
        summary.candidate,
        summary.production,
        "blessed" if result.blessed else "not blessed: " + "; ".join(result.reasons),
    )
    evaluation_art, blessing_art = store.record(
        summary.run_id,
        "Evaluator",
        config.evaluation.model_dump(),
        [model_art, examples_art],
        [
            ("evaluation", result.files["report"], {"candidate": summary.candidate, "production": summary.production}),
            ("blessing", str(run_dir / "evaluation" / "evaluation.json"), {"blessed": result.blessed}),
        ],
        t,
    )

    log.info("[5/6] InfraValidator: load in a fresh process, one warm-up request")
    t = _now()
    warmup = run_dir / "warmup_image"
    warmup.write_bytes(data[test[0]] if test else data[0])
    infra = infra_validator.validate(candidate.saved_model_dir, str(warmup), len(candidate.card.label_spec.labels))
    summary.infra = ("ok " if infra.ok else "failed ") + infra.detail
    log.info("      %s (%.1fs)", summary.infra, infra.seconds)
    (infra_art,) = store.record(
        summary.run_id, "InfraValidator", {}, [model_art], [("infra_blessing", str(warmup), infra.model_dump())], t
    )

    log.info("[6/6] Pusher")
    t = _now()
    if not (result.blessed and infra.ok):
        summary.status = "succeeded"
        log.info("      nothing pushed: production stays %s", f"v{production.version}" if production else "unset")
        return
    card = candidate.card.model_copy(update={"training": {**candidate.card.training, "retraining_run": summary.run_id}})
    files = candidate.files | {f"evaluation/{Path(p).name}": p for p in result.files.values()}
    version = registry.register(card, candidate.saved_model_dir, files)
    registry.set_alias(config.model_name, "production", version)
    summary.pushed_version, summary.status = version, "succeeded"
    log.info("      registered %s v%d and moved production to it", config.model_name, version)
    store.record(
        summary.run_id,
        "Pusher",
        {"alias": "production"},
        [model_art, blessing_art, infra_art, evaluation_art],
        [("pushed_model", registry.version_uri(config.model_name, version), {"version": version})],
        t,
    )


def format_summary(s: RunSummary) -> str:
    lines = [
        f"run {s.run_id}: {s.status} in {s.seconds:.0f}s ({s.run_dir})",
        f"  data: {s.counts}",
    ]
    if s.validation.get("warnings"):
        lines.append(f"  validation warnings: {len(s.validation['warnings'])}")
    if s.tuning:
        lines.append(f"  tuned: {s.tuning}")
    if s.candidate:
        lines.append(f"  candidate: {s.candidate}")
        lines.append(
            f"  production: {s.production if s.production else 'none'}"
            + (f" (v{s.production_version})" if s.production_version else "")
        )
        lines.append(f"  blessed: {'yes' if s.blessed else 'no'}" + ("" if s.blessed else f" ({'; '.join(s.reasons)})"))
    elif s.reasons:
        lines.append(f"  stopped: {'; '.join(s.reasons)}")
    if s.infra:
        lines.append(f"  infra validation: {s.infra}")
    lines.append(f"  pushed: v{s.pushed_version} is production" if s.pushed_version else "  pushed: nothing")
    return "\n".join(lines)
