"""One retraining run per model at a time: an OS file lock, released even if the process is killed."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path


class RunLocked(RuntimeError):
    pass


@contextmanager
def run_lock(work_dir: str, model_name: str):
    path = Path(work_dir, f"{model_name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunLocked(
                f"another retraining run of {model_name!r} is in progress ({holder}); "
                "wait for it to finish, or stop it and run again"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {datetime.now(UTC).isoformat(timespec='seconds')}")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
