"""``make demo-stream``: the streaming path end to end, after ``make demo``, on local stand-ins.

Starts the Pub/Sub and BigQuery emulators, runs ``imgclf stream`` (the real command, a
child process), publishes the held-out ELPV images with ``imgclf publish`` plus a few bad
messages, promotes a second model version halfway with ``imgclf models promote``, then
prints rows from BigQuery and the counts per version and per dead-letter reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from imgclf.demo import MODEL
from imgclf.emulators import BigQueryEmulator, PubSubEmulator
from imgclf.image_source import image_uris
from models.registry import ModelRegistry
from models.settings import get_settings

PROJECT = "test-proj"
DATASET = "imgclf_demo"
RATE = 25  # messages per second
WAIT_S = 300  # the longest the demo waits for the stream to catch up


def _step(n: int, text: str) -> None:
    print(f"\n[{n}/5] {text}", flush=True)


def _imgclf(env: dict[str, str], *args: str) -> None:
    print("  $ imgclf " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "imgclf.cli", *args], check=True, env=env)


def _count(client, sql: str) -> list[dict]:
    try:
        return [dict(row) for row in client.query(sql).result()]
    except Exception as e:  # the table appears with its first row
        if "not found" in str(e).lower():
            return []
        raise


def _halves(holdout: Path, work: Path) -> tuple[Path, Path]:
    """The held-out images as two CSVs of absolute URIs, one per half of the demo."""
    uris = image_uris(str(holdout))
    first, second = work / "first-half.csv", work / "second-half.csv"
    for path, part in ((first, uris[: len(uris) // 2]), (second, uris[len(uris) // 2 :])):
        path.write_text("\n".join(["image_uri", *part]) + "\n")
    return first, second


def _wait_until(client, stream: subprocess.Popen, rows: int, dead: int, what: str) -> tuple[int, int]:
    """Polls the tables until they hold ``rows`` rows and ``dead`` dead letters (or WAIT_S passes)."""
    deadline = time.monotonic() + WAIT_S
    have = (0, 0)
    while time.monotonic() < deadline and stream.poll() is None:
        have = (
            sum(r["n"] for r in _count(client, f"SELECT COUNT(*) n FROM `{PROJECT}.{DATASET}.predictions`")),
            sum(
                r["n"] for r in _count(client, f"SELECT COUNT(*) n FROM `{PROJECT}.{DATASET}.predictions_dead_letters`")
            ),
        )
        print(f"  waiting for {what}: {have[0]} rows, {have[1]} dead letters", flush=True)
        if have[0] >= rows and have[1] >= dead:
            break
        time.sleep(2)
    return have


def main() -> int:
    settings = get_settings()
    data_dir = Path(settings.data_dir, "demo")
    holdout = data_dir / "elpv" / "holdout.csv"
    registry = ModelRegistry(settings.model_root)
    if not holdout.exists() or registry.alias(MODEL, "production") is None:
        print(f"error: run `make demo` first (it trains {MODEL} and writes {holdout})", file=sys.stderr)
        return 1
    work = data_dir / "stream"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    production = registry.alias(MODEL, "production")

    others = [v for v in registry.versions(MODEL) if v != production]
    if others:
        candidate = max(others)
        _step(1, f"A second version of {MODEL} to promote halfway: v{candidate}, already registered")
    else:
        _step(1, f"A second version of {MODEL} to promote halfway (a quick retrain with another seed)")
        _imgclf(
            dict(os.environ),
            "train",
            "--manifest",
            str(data_dir / "elpv" / "manifest.csv"),
            "--model",
            MODEL,
            "--recipe",
            "fast",
            "--epochs",
            "30",
            "--seed",
            "1",
            "--model-root",
            settings.model_root,
        )
        candidate = max(registry.versions(MODEL))

    _step(2, "Starting the Pub/Sub and BigQuery emulators and `imgclf stream`")
    with PubSubEmulator(PROJECT) as pubsub, BigQueryEmulator(PROJECT) as bq, pubsub.environ(), bq.environ():
        env = {**os.environ, **pubsub.env, **bq.env}
        topic = pubsub.create_topic("images")
        subscription = pubsub.create_subscription("images-stream", "images")
        dead_topic = pubsub.create_topic("dead-letters")
        table = f"{PROJECT}:{DATASET}.predictions"
        command = [
            "stream",
            "--input_subscription",
            subscription,
            "--output_table",
            table,
            "--dead_letter_topic",
            dead_topic,
            "--project",
            PROJECT,
            "--model",
            MODEL,
            "--model_root",
            settings.model_root,
            "--refresh_s",
            "2",
        ]
        print("  $ imgclf " + " ".join(command), flush=True)
        log = open(work / "stream.log", "w")
        stream = subprocess.Popen(
            [sys.executable, "-m", "imgclf.cli", *command], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            first, second = _halves(holdout, work)
            n_first, n_second = (len(p.read_text().splitlines()) - 1 for p in (first, second))
            client = bq.client()
            bad = [b"this is not JSON", json.dumps({"uri": "no image_uri field"}).encode()]
            bad.append(json.dumps({"image_uri": str(data_dir / "no-such-image.png")}).encode())
            want = 1 + n_first + n_second + len(bad)
            publisher = pubsub.publisher()
            publisher.publish(topic, json.dumps({"image_uri": image_uris(str(first))[0]}).encode()).result(timeout=30)
            rows, dead = _wait_until(client, stream, 1, 0, "the stream to start (one warm-up message)")

            _step(3, f"Publishing the {n_first + n_second} held-out images at {RATE}/s, promoting v{candidate} halfway")
            _imgclf(env, "publish", "--topic", topic, "--images", str(first), "--rate", str(RATE))
            rows, dead = _wait_until(client, stream, 1 + n_first, 0, "the first half")
            _imgclf(env, "models", "promote", MODEL, "--version", str(candidate), "--model-root", settings.model_root)
            time.sleep(3)  # the stream reads the alias every 2 s
            _imgclf(env, "publish", "--topic", topic, "--images", str(second), "--rate", str(RATE))
            for data in bad:
                publisher.publish(topic, data).result(timeout=30)
            print(f"  published {len(bad)} bad messages (not JSON, no image_uri, a missing image)")

            _step(4, "Waiting for every message to be a row or a dead letter")
            rows, dead = _wait_until(client, stream, want - len(bad), len(bad), "the second half")
        finally:
            stream.send_signal(signal.SIGINT)  # the command cancels its pipeline and exits
            try:
                stream.wait(timeout=90)
            except subprocess.TimeoutExpired:
                stream.kill()
            log.close()

        _step(5, "Summary (queried from the BigQuery emulator with the official client)")
        for row in _count(
            client,
            f"SELECT image_uri, labels, model_version, ROUND(latency_ms) AS latency_ms "
            f"FROM `{PROJECT}.{DATASET}.predictions` ORDER BY predicted_at LIMIT 3",
        ):
            print(f"  {row}")
        for row in _count(
            client,
            f"SELECT model_version, COUNT(*) AS rows, ROUND(AVG(latency_ms)) AS mean_latency_ms "
            f"FROM `{PROJECT}.{DATASET}.predictions` GROUP BY model_version ORDER BY model_version",
        ):
            print(
                f"  version {row['model_version']}: {row['rows']} rows, mean publish-to-row {row['mean_latency_ms']} ms"
            )
        for row in _count(
            client,
            f"SELECT error_code, COUNT(*) AS n FROM `{PROJECT}.{DATASET}.predictions_dead_letters` GROUP BY error_code",
        ):
            print(f"  dead letters {row['error_code']}: {row['n']}")
        print(f"  {rows} rows + {dead} dead letters for {want} messages published")
    registry.set_alias(MODEL, "production", production)  # leave the registry as make demo left it
    print(f"  production alias set back to v{production}; stream log: {work / 'stream.log'}")
    print(f"  total time: {time.monotonic() - started:.0f}s")
    return 0 if rows + dead == want else 1


if __name__ == "__main__":
    sys.exit(main())
