"""Retraining from the dashboard: start ``imgclf retrain`` on the current labels in its own
process (so a run outlives the page and a browser refresh), and follow runs in the lineage
store, which is where the pipeline records status and results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from models.errors import InvalidInput
from retraining.lineage import LineageStore
from retraining.pipeline import RetrainConfig


@dataclass(frozen=True)
class Launch:
    pid: int
    log: str


def load_config(path: str | None, labels_db: str) -> RetrainConfig:
    """The configured run, reading its corrections from this label store."""
    if not path:
        raise InvalidInput("no retraining config: set IMGCLF_RETRAIN_CONFIG to a retraining YAML (docs/retraining.md)")
    if not Path(path).exists():
        raise InvalidInput(f"the retraining config {path} does not exist")
    return RetrainConfig.from_yaml(path, corrections=labels_db)


def start(config_path: str, labels_db: str, work_dir: str) -> Launch:
    """Starts one run in the background; its output goes to a log file beside the runs."""
    logs = Path(work_dir, "dashboard-launches")
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgclf", "retrain", "--config", config_path, "--corrections", labels_db],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Launch(proc.pid, str(log))


def recent_runs(config: RetrainConfig, limit: int = 10) -> list[dict]:
    if not Path(config.work_dir).exists():
        return []
    runs = LineageStore(config.lineage).runs(config.model_name)[-limit:]
    return [
        {
            "run": r.id,
            "status": r.status,
            "trigger": r.trigger,
            "started": r.started_at,
            "finished": r.finished_at or "",
            **_result(r.summary),
        }
        for r in reversed(runs)
    ]


def _result(summary_json: str) -> dict:
    s = json.loads(summary_json or "{}")
    return {
        "candidate": s.get("candidate") or "",
        "production": s.get("production") or "",
        "blessed": s.get("blessed", ""),
        "pushed version": s.get("pushed_version") or "",
        "reasons": "; ".join(s.get("reasons", []))[:300],
    }


def log_tail(path: str, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
