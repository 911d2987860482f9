"""A batch run's status as a small JSON file, for whoever started the run to read.

The API's job runner follows local jobs through it instead of parsing log lines: the
file says ``running`` with the counts so far, then ``succeeded`` with the counts, output
files and model version, or ``failed`` with the reason. Each write replaces the file
whole (``storage.replace_atomically``), so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import apache_beam as beam

from models import storage

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def write(path: str, state: str, **fields: Any) -> None:
    storage.replace_atomically(path, json.dumps({"state": state, **fields}).encode())


def read(path: str | os.PathLike) -> dict[str, Any] | None:
    """The last status written, or None before the first."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class ReportProgress(beam.DoFn):
    """Counts records as they pass and rewrites the status file at most every ``interval_s``.

    The local runner may run several instances of this DoFn in one process, so the counts
    are kept per file for the whole process; on Dataflow there is no status file to write.
    """

    _totals: ClassVar[dict[str, dict[str, int]]] = {}
    _written: ClassVar[dict[str, float]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str, interval_s: float = 1.0):
        self.path = path
        self.interval_s = interval_s

    @classmethod
    def start(cls, path: str) -> None:
        """Zero counts for a new run (a process may run several) and a first ``running`` status."""
        with cls._lock:
            cls._totals[path] = {"ok": 0, "error": 0}
            cls._written.pop(path, None)
        write(path, RUNNING, ok=0, error=0)

    def process(self, record):
        with self._lock:
            totals = self._totals.setdefault(self.path, {"ok": 0, "error": 0})
            totals["error" if record.error else "ok"] += 1
            now = time.monotonic()
            if now - self._written.get(self.path, 0.0) >= self.interval_s:
                self._written[self.path] = now
                write(self.path, RUNNING, **totals)
        yield record
