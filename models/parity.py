"""The parity gate: an accelerated artifact is registered only if it gives the SavedModel's answers.

Both run on the version's own test split (its validation split, or its first training images, when
it has none), bytes in, as serving runs them. In float32 the artifact must agree within
``MAX_ABS_DIFF`` on every probability and change no decision. Reduced precision (bf16) is opt-in per
version: it must keep the split's accuracy within ``MAX_ACCURACY_DROP``, and its metrics go on the card.
A refused artifact is deleted and the card says why; the version still serves on TensorFlow.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from models import evaluation
from models.export import OPENVINO_DIR, export_openvino
from models.label_spec import LabelSpec
from models.openvino_runtime import Precision
from models.prediction import ImageError
from models.registry import RuntimeCheck
from models.runtimes import OpenVinoRunner, Runner, TensorFlowRunner

log = logging.getLogger("imgclf.train")

MAX_ABS_DIFF = 1e-4
MAX_ACCURACY_DROP = 0.005
BATCH = 64  # as batch inference calls the model
TIMED_IMAGES = 128
FALLBACK_IMAGES = 256  # from the training split, for a version with no test or validation images


def _run(runner: Runner, images: Sequence[bytes]) -> list[np.ndarray | ImageError]:
    return [out for i in range(0, len(images), BATCH) for out in runner.predict_images(images[i : i + BATCH])]


def _timed(runner: Runner, images: Sequence[bytes]) -> tuple[list[np.ndarray | ImageError], float]:
    """Outputs and images per second, after a first call that traces and warms up; a small split is timed over
    ``TIMED_IMAGES`` of its images repeated, so ``runtime: auto`` does not choose on a few milliseconds."""
    runner.predict_images(images[:BATCH])
    timed = images if len(images) >= TIMED_IMAGES else (list(images) * TIMED_IMAGES)[:TIMED_IMAGES]
    started = time.monotonic()
    outputs = _run(runner, timed)
    rate = round(len(timed) / max(time.monotonic() - started, 1e-9), 1)
    return (outputs if timed is images else _run(runner, images)), rate


def compare(
    spec: LabelSpec,
    reference: Sequence[np.ndarray | ImageError],
    candidate: Sequence[np.ndarray | ImageError],
    truth: Sequence[Sequence[str]],
    precision: Precision = "f32",
) -> RuntimeCheck:
    """The verdict on ``candidate``'s outputs against ``reference``'s (TensorFlow's), image by image."""
    one_sided = sum(
        isinstance(a, ImageError) != isinstance(b, ImageError) for a, b in zip(reference, candidate, strict=True)
    )
    both = [
        i
        for i, (a, b) in enumerate(zip(reference, candidate, strict=True))
        if not isinstance(a, ImageError) and not isinstance(b, ImageError)
    ]
    ref = np.asarray([reference[i] for i in both], np.float64).reshape(len(both), len(spec.labels))
    got = np.asarray([candidate[i] for i in both], np.float64).reshape(len(both), len(spec.labels))
    diff = float(np.max(np.abs(ref - got))) if both else 0.0
    changed = sum(spec.decide(a) != spec.decide(b) for a, b in zip(ref, got, strict=True))
    labels = [truth[i] for i in both]
    metrics = evaluation.evaluate(spec, got, labels) if both else {}
    figures = f"max |dp| {diff:.2g}, {changed} of {len(both)} decisions changed"
    if one_sided:
        passed, reason = False, f"{one_sided} images failed on one runtime only"
    elif precision == "f32":
        passed = diff <= MAX_ABS_DIFF and changed == 0
        reason = figures + ("" if passed else f" (the gate allows max |dp| {MAX_ABS_DIFF:g} and no change)")
    else:
        drop = evaluation.evaluate(spec, ref, labels).get("accuracy", 0.0) - metrics.get("accuracy", 0.0)
        passed = round(drop, 9) <= MAX_ACCURACY_DROP
        reason = f"{figures}, accuracy {-drop:+.4f}" + (
            "" if passed else f" (the gate allows a drop of {MAX_ACCURACY_DROP:g} at {precision})"
        )
    return RuntimeCheck(
        passed=passed,
        reason=reason,
        precision=precision,
        images=len(reference),
        max_abs_diff=diff,
        decisions_changed=changed,
        metrics=metrics,
    )


def export_checked(
    classifier: keras.Model,
    spec: LabelSpec,
    image_size: int,
    out_dir: str,
    saved_model_dir: str,
    split: str,
    images: Sequence[bytes],
    truth: Sequence[Sequence[str]],
    precision: Precision = "f32",
) -> tuple[RuntimeCheck, dict[str, str]]:
    """Exports the OpenVINO artifact under ``out_dir``, runs the gate, and returns the verdict with the files to
    register (none if it was refused: the folder is removed)."""
    folder = Path(out_dir, OPENVINO_DIR)
    if not images:
        return RuntimeCheck(passed=False, reason="no images to run the gate on", split=split), {}
    try:
        xml = export_openvino(classifier, spec, image_size, str(folder))
        tf_out, tf_rate = _timed(TensorFlowRunner(saved_model_dir), images)
        ov_out, ov_rate = _timed(OpenVinoRunner(xml, image_size, precision), images)
    except Exception as e:  # a network OpenVINO cannot convert or run: serve on TF, say why
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("OpenVINO artifact not registered: %s: %s", type(e).__name__, e)
        return RuntimeCheck(passed=False, reason=f"export failed: {type(e).__name__}: {e}"[:300], split=split), {}
    check = compare(spec, tf_out, ov_out, truth, precision).model_copy(
        update={"split": split, "images_per_s": ov_rate, "tf_images_per_s": tf_rate}
    )
    speed = f"{ov_rate:.0f} img/s against TensorFlow's {tf_rate:.0f}"
    if not check.passed:
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("OpenVINO %s artifact refused on %d %s images: %s", precision, len(images), split, check.reason)
        return check, {}
    log.info("OpenVINO %s artifact passed on %d %s images: %s; %s", precision, len(images), split, check.reason, speed)
    files = {f"{OPENVINO_DIR}/{p.name}": str(p) for p in sorted(folder.iterdir()) if p.is_file()}
    return check, files
