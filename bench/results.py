"""Where benchmark figures go: one timestamped JSON per run under bench/results/."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save(kind: str, figures: dict) -> Path:
    """Writes ``figures`` with the time and machine; prints and returns the path."""
    now = datetime.now(UTC)
    out = RESULTS / f"{kind}-{now:%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    payload = {
        "when": now.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        **figures,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"figures saved to {out.relative_to(RESULTS.parent.parent)}")
    return out
