"""InfraValidator: load the exported SavedModel in a fresh process and send it a warm-up request.

A model that only loads in the process that trained it (a missing asset, a Python-side
dependency) fails here, before it can reach serving. The process is started when the Trainer
starts, so that importing TensorFlow (most of its time) overlaps training; it shares nothing
with the run and is told where the model is once there is one, as one JSON line on stdin
(``python -m retraining.infra_validator`` then ``{"saved_model": ..., "image": ..., "labels": N}``).
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
    seconds: float  # how long the run waited for the answer


class InfraValidator:
    """One fresh process per validation; ``close`` (or leaving the ``with`` block) ends one never asked."""

    def __init__(self, timeout: float = 300):
        self.timeout = timeout
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "retraining.infra_validator"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def validate(self, saved_model_dir: str, image_path: str, num_labels: int) -> InfraResult:
        self.start()
        process, started = self._process, time.monotonic()
        request = json.dumps({"saved_model": saved_model_dir, "image": image_path, "labels": num_labels})
        try:
            stdout, stderr = process.communicate(request + "\n", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.close()
            return InfraResult(ok=False, detail=f"no answer within {self.timeout:.0f}s", seconds=self.timeout)
        self._process = None  # answered: this process is done
        seconds = round(time.monotonic() - started, 1)
        if process.returncode != 0:
            last = (stderr.strip().splitlines() or ["(no output)"])[-1]
            return InfraResult(ok=False, detail=f"exit {process.returncode}: {last[:300]}", seconds=seconds)
        return InfraResult(ok=True, detail=stdout.strip().splitlines()[-1], seconds=seconds)

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.communicate()
            self._process = None

    def __enter__(self) -> InfraValidator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _main() -> int:
    import models  # noqa: F401, I001  (first: it quiets TensorFlow)
    import tensorflow as tf
    from models.export import load_signature

    line = sys.stdin.readline()
    if not line.strip():  # the run ended without a model to validate
        return 0
    request = json.loads(line)
    with open(request["image"], "rb") as f:
        image = f.read()
    signature = load_signature(request["saved_model"])
    started = time.perf_counter()
    probabilities = signature(image_bytes=tf.constant([image]))["probabilities"].numpy()
    latency_ms = (time.perf_counter() - started) * 1000
    num_labels = request["labels"]
    if probabilities.shape != (1, num_labels) or not (probabilities >= 0).all() or not (probabilities <= 1).all():
        print(f"bad output: shape {probabilities.shape}, values {probabilities.tolist()}", file=sys.stderr)
        return 1
    print(json.dumps({"shape": list(probabilities.shape), "warmup_ms": round(latency_ms, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
