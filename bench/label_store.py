"""``make bench-labels``: the label store with 100,000 images and 100,000 predictions, on
SQLite and on PostgreSQL, in one run.

Per database it times (median and p95 of ``--repeats``):
- a review-queue page (24 images, unlabelled first, most uncertain first), unfiltered and
  filtered by a predicted label, plus the count the page shows;
- a grid page (48 images) with its count;
- saving one annotation (``annotate``: the conditional UPDATE and the history row);
- one grid action on 48 images (``annotate_many``, one transaction).

Baseline, in the same run: the same queue page computed from the append-only history
tables alone (newest prediction and annotation per image by GROUP BY), which is what the
current-state columns on ``images`` replace.
Targets (issue: labeling dashboard): queue page < 300 ms, save < 30 ms, grid action < 300 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from bench.results import save
from imgclf.emulators import PostgresServer
from labeling_dashboard.store import Change, LabelStore, NewPrediction, QueueFilter

LABELS = ["ok", "scratch", "dent", "stain", "crack"]

BASELINE_QUEUE = """
WITH latest_p AS (SELECT image_id, MAX(id) AS id FROM predictions GROUP BY image_id),
     latest_a AS (SELECT image_id, MAX(revision) AS revision FROM annotations GROUP BY image_id)
SELECT i.uri, p.labels, p.uncertainty, a.revision
FROM images i
JOIN latest_p ON latest_p.image_id = i.id
JOIN predictions p ON p.id = latest_p.id
LEFT JOIN latest_a a ON a.image_id = i.id
ORDER BY (a.revision IS NOT NULL), p.uncertainty DESC, i.id
LIMIT 24
"""


def fill(store: LabelStore, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    batch = []
    for i in range(n):
        p = rng.random()
        label = LABELS[i % len(LABELS)]
        scores = {label: round(max(p, 1 - p), 4), LABELS[(i + 1) % len(LABELS)]: round(min(p, 1 - p), 4)}
        batch.append(NewPrediction(f"gs://bench/images/{i:06d}.jpg", "bench", 1 + i % 3, [label], scores, rng.random()))
        if len(batch) == 5000:
            store.add_predictions(batch)
            batch = []
    if batch:
        store.add_predictions(batch)


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm caches and the connection pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}


def measure(store: LabelStore, n: int, repeats: int) -> dict:
    started = time.perf_counter()
    fill(store, n)
    figures: dict = {"fill_s": round(time.perf_counter() - started, 1)}
    # a realistic store: a tenth already labelled
    labelled = [f"gs://bench/images/{i:06d}.jpg" for i in range(0, n, 10)]
    for start in range(0, len(labelled), 1000):
        store.annotate_many([Change(u, ["ok"], 0) for u in labelled[start : start + 1000]], "seed")

    def queue_page():
        return store.queue(QueueFilter(), limit=24), store.count(QueueFilter(labeled=False))

    figures["queue_page"] = timed(queue_page, repeats)
    figures["queue_page_filtered"] = timed(
        lambda: (
            store.queue(QueueFilter(predicted_label="dent"), limit=24),
            store.count(QueueFilter(predicted_label="dent")),
        ),
        repeats,
    )
    figures["grid_page"] = timed(lambda: (store.queue(QueueFilter(), limit=48, offset=96), store.count()), repeats)
    with store.engine.connect() as connection:
        figures["baseline_queue_from_history"] = timed(
            lambda: connection.execute(text(BASELINE_QUEUE)).all(), max(3, repeats // 5)
        )

    targets = iter(f"gs://bench/images/{i:06d}.jpg" for i in range(1, n, 10))

    def save_one():
        store.annotate(next(targets), ["scratch"], "bench", seen_revision=0)

    figures["save_one"] = timed(save_one, repeats)

    def grid_action():
        store.annotate_many([Change(next(targets), ["dent"], 0) for _ in range(48)], "bench")

    figures["grid_action_48"] = timed(grid_action, max(5, repeats // 4))
    ok = (
        figures["queue_page"]["p95_ms"] < 300
        and figures["queue_page_filtered"]["p95_ms"] < 300
        and figures["save_one"]["p95_ms"] < 30
        and figures["grid_action_48"]["p95_ms"] < 300
    )
    figures["targets_met"] = ok
    return figures


def _print(db: str, figures: dict) -> None:
    print(f"\n{db}: filled {figures['fill_s']} s")
    for key in (
        "queue_page",
        "queue_page_filtered",
        "grid_page",
        "baseline_queue_from_history",
        "save_one",
        "grid_action_48",
    ):
        f = figures[key]
        print(f"  {key:30s} median {f['median_ms']:8.2f} ms   p95 {f['p95_ms']:8.2f} ms")
    base, queue = figures["baseline_queue_from_history"]["median_ms"], figures["queue_page"]["median_ms"]
    print(f"  queue page vs baseline: {base / queue:.0f}x faster; targets met: {figures['targets_met']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    results = {"images": args.images}
    with tempfile.TemporaryDirectory() as tmp:
        for db in args.databases.split(","):
            if db == "sqlite":
                results[db] = measure(LabelStore(f"sqlite:///{Path(tmp) / 'labels.db'}"), args.images, args.repeats)
            else:
                with PostgresServer() as pg:
                    results[db] = measure(LabelStore(pg.create_database("bench")), args.images, args.repeats)
            _print(db, results[db])
    save("label_store", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
