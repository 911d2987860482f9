"""Data validation: the ExampleGen statistics against the label spec, thresholds and the last run.

Hard failures (an unknown label, too few examples) stop a run; warnings (imbalance,
drift, unreadable images) go in the report. TFDV does not install beside this stack,
so the checks are the ones this task needs, written out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from models.label_spec import LabelSpec


class ValidationConfig(BaseModel):
    allow_new_labels: bool = False
    min_examples_per_label: int = Field(5, ge=0, description="In the train split.")
    min_split_examples: dict[str, int] = Field(default_factory=lambda: {"train": 10, "validation": 2, "test": 2})
    max_imbalance: float = Field(20.0, gt=1, description="Largest / smallest train label count before a warning.")
    max_label_share_drift: float = Field(0.15, gt=0, description="Change in a label's share of train vs the last run.")
    max_image_size_drift: float = Field(0.25, gt=0, description="Relative change of mean width or height.")
    max_unreadable_fraction: float = Field(0.05, ge=0)


class ValidationReport(BaseModel):
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    drift: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {label: n / total for label, n in counts.items()}


def validate(
    stats: dict[str, Any],
    spec: LabelSpec | None,
    config: ValidationConfig,
    previous: dict[str, Any] | None = None,
    added_labels: Sequence[str] = (),
) -> ValidationReport:
    """``added_labels``: labels an admin added in the label store; they are new on purpose."""
    report = ValidationReport()
    splits = stats["splits"]
    seen = sorted({label for s in splits.values() for label in s["label_counts"]})
    if spec is not None:
        new = [label for label in seen if label not in spec.labels]
        approved = [label for label in new if label in added_labels]
        if approved:
            report.warnings.append(f"labels {approved}, added in the label store, will be added to the label spec")
        new = [label for label in new if label not in approved]
        if new and not config.allow_new_labels:
            counts = {label: sum(s["label_counts"].get(label, 0) for s in splits.values()) for label in new}
            report.errors += [
                f"unknown label {label!r} ({n} examples): not in the production label spec {spec.labels}; "
                "fix the labels or pass --allow-new-labels"
                for label, n in counts.items()
            ]
        elif new:
            report.warnings.append(f"new labels {new} will be added to the label spec")
    for split, minimum in config.min_split_examples.items():
        n = splits.get(split, {}).get("examples", 0)
        if n < minimum:
            report.errors.append(f"the {split} split has {n} examples; at least {minimum} are needed")
    train_counts = splits["train"]["label_counts"]
    expected = list(spec.labels) if spec is not None else seen
    for label in expected:
        if train_counts.get(label, 0) < config.min_examples_per_label:
            report.errors.append(
                f"label {label!r} has {train_counts.get(label, 0)} training examples; "
                f"at least {config.min_examples_per_label} are needed"
            )
    present = [n for n in train_counts.values() if n]
    if len(present) >= 2 and max(present) / min(present) > config.max_imbalance:
        report.warnings.append(f"class imbalance {max(present) / min(present):.1f}:1 in train ({train_counts})")
    total = sum(s["examples"] for s in splits.values()) + stats["unreadable"]
    if total and stats["unreadable"] / total > config.max_unreadable_fraction:
        report.warnings.append(f"{stats['unreadable']} of {total} images were unreadable (see unreadable.csv)")
    if previous:
        _drift(report, splits, previous["splits"], config)
    return report


def _drift(report: ValidationReport, now: dict, before: dict, config: ValidationConfig) -> None:
    share_now, share_before = _shares(now["train"]["label_counts"]), _shares(before["train"]["label_counts"])
    changes = {
        label: round(share_now.get(label, 0) - share_before.get(label, 0), 4)
        for label in sorted(set(share_now) | set(share_before))
    }
    report.drift["label_share_change"] = changes
    for label, change in changes.items():
        if abs(change) > config.max_label_share_drift:
            report.warnings.append(f"label {label!r} share of train moved by {change:+.1%} since the last run")
    for dim in ("width", "height"):
        old, new = before["train"][dim]["mean"], now["train"][dim]["mean"]
        relative = (new - old) / old if old else 0.0
        report.drift[f"mean_{dim}_change"] = round(relative, 4)
        if abs(relative) > config.max_image_size_drift:
            report.warnings.append(
                f"mean image {dim} moved by {relative:+.0%} since the last run ({old:.0f} -> {new:.0f})"
            )
