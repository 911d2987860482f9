"""InfraValidator: load the exported SavedModel in a fresh process and send it a warm-up request.

A model that only loads in the process that trained it (a missing asset, a Python-side
dependency) fails here, before it can reach serving. Run as
``python -m retraining.infra_validator SAVED_MODEL IMAGE LABELS``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from pydantic import BaseModel


class InfraResult(BaseModel):
    ok: bool
    detail: str
    seconds: float


def validate_in_fresh_process(
    saved_model_dir: str, image_path: str, num_labels: int, timeout: float = 300
) -> InfraResult:
    started = time.monotonic()
    command = [sys.executable, "-m", "retraining.infra_validator", saved_model_dir, image_path, str(num_labels)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return InfraResult(ok=False, detail=f"no answer within {timeout:.0f}s", seconds=timeout)
    seconds = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return InfraResult(ok=False, detail=f"exit {done.returncode}: {last[:300]}", seconds=seconds)
    return InfraResult(ok=True, detail=done.stdout.strip().splitlines()[-1], seconds=seconds)


def _main(saved_model_dir: str, image_path: str, num_labels: int) -> int:
    import models  # noqa: F401  (quiet TensorFlow)
    from models.export import load_signature

    with open(image_path, "rb") as f:
        image = f.read()
    import tensorflow as tf

    signature = load_signature(saved_model_dir)
    started = time.perf_counter()
    probabilities = signature(image_bytes=tf.constant([image]))["probabilities"].numpy()
    latency_ms = (time.perf_counter() - started) * 1000
    if probabilities.shape != (1, num_labels) or not (probabilities >= 0).all() or not (probabilities <= 1).all():
        print(f"bad output: shape {probabilities.shape}, values {probabilities.tolist()}", file=sys.stderr)
        return 1
    print(json.dumps({"shape": list(probabilities.shape), "warmup_ms": round(latency_ms, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
