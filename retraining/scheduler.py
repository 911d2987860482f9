"""``imgclf retrain --every 24h --min-new-labels 50``: run on a schedule or when corrections pile up.

Whichever comes first: the interval since the model's last run, or enough corrections
newer than that run's start. The last run is read from the lineage store, so a restart
of the scheduler neither repeats a run nor forgets one.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retraining.corrections import new_since, parse_time
from retraining.lineage import LineageStore
from retraining.lock import RunLocked
from retraining.pipeline import RetrainConfig, format_summary, run_once

log = logging.getLogger("imgclf.retrain")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_every(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise ValueError(f"cannot read interval {text!r}; use a number and s, m, h or d, e.g. 24h")
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


def due(
    now: datetime, last_start: datetime | None, every: timedelta, new_labels: int, min_new_labels: int
) -> str | None:
    """Why a run should start now, or None."""
    if last_start is None:
        return "first run"
    if now - last_start >= every:
        return f"schedule ({every} since the last run)"
    if min_new_labels and new_labels >= min_new_labels:
        return f"{new_labels} new corrections (>= {min_new_labels})"
    return None


def last_run_start(store: LineageStore, model_name: str) -> datetime | None:
    runs = [r for r in store.runs(model_name) if r.status != "abandoned"]
    return parse_time(runs[-1].started_at) if runs else None


def run_forever(
    config: RetrainConfig,
    every: timedelta,
    min_new_labels: int,
    poll_seconds: float = 60,
    iterations: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Checks every ``poll_seconds``; ``iterations`` bounds the loop (tests), None runs until stopped."""
    Path(config.work_dir).mkdir(parents=True, exist_ok=True)
    store = LineageStore(config.lineage)
    done = 0
    while iterations is None or done < iterations:
        done += 1
        last = last_run_start(store, config.model_name)
        reason = due(datetime.now(UTC), last, every, new_since(config.corrections, last), min_new_labels)
        if reason:
            log.info("starting a run: %s", reason)
            try:
                print(format_summary(run_once(config, trigger=reason[:32])), flush=True)
            except RunLocked as e:
                log.warning("%s", e)
            except Exception as e:  # a failed run is recorded; the scheduler keeps going
                log.error("run failed: %s: %s", type(e).__name__, e)
        if iterations is None or done < iterations:
            sleep(poll_seconds)
