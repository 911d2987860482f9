"""``make bench``: batch classification throughput on the same JPEGs, per runtime, one run.

(a) naive: PIL decode + resize, one model call per image;
(b) ceiling: the registered model on in-memory batches of 64, in-process: the SavedModel's
    signature on TensorFlow, and on OpenVINO its artifact after TF decoding (models/runtimes.py);
(c) the Beam batch pipeline end to end (CSV in, CSV out), as ``python -m beam_pipelines.batch
    --runtime tf`` and ``--runtime openvino``.

Each runs in a fresh process; (b) and (c) alternate, runtime by runtime, for a few rounds because
this machine's speed drifts by +-10% between minutes. Prints images/second per runtime, c/b (the
mean of each round's ratio), OpenVINO's speed over TensorFlow's, the decisions the two pipelines'
outputs differ on, and the peak RSS of (c); writes the figures as JSON under bench/results/.
Targets: c/b >= 0.9 and peak RSS of (c) < 2 GB (issue 2); (c) on OpenVINO >= 1.8x (c) on
TensorFlow with identical decisions (issue 12).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

import models  # noqa: F401  (quiet TensorFlow start-up)
from models.registry import ModelRegistry

HERE = Path(__file__).resolve().parent
SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "cat", "colorwheel")


def make_jpegs(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """Random crops, flips and tints of scikit-image's photos, saved as JPEG (quality 90)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)() for name in SOURCES]
    for i, path in enumerate(paths):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        crop = int(min(h, w) * rng.uniform(0.5, 1.0))
        y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        img = Image.fromarray(photo[y : y + crop, x : x + crop]).resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, np.float32) * rng.uniform(0.7, 1.2, 3)
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return paths


def classifier_and_spec():
    """EfficientNet-Lite0 (ImageNet weights) with an untrained 3-class head: speed, not accuracy."""
    import keras

    from models.backbones import build_backbone
    from models.label_spec import LabelSpec
    from models.training import build_head

    spec = LabelSpec(task="multiclass", labels=["a", "b", "c"])
    backbone, size = build_backbone("efficientnet_lite0")
    return keras.Sequential([backbone, build_head(spec, backbone.output_shape[-1], 0.0)]), spec, size


def make_model(root: Path, paths: list[Path]) -> str:
    """Registers the benchmark model as 'bench' (once) with its OpenVINO artifact, through the parity gate on
    the first 256 images, and returns its SavedModel path."""
    import keras

    from models import parity
    from models.export import export_saved_model
    from models.registry import ModelCard, ModelRegistry

    registry = ModelRegistry(str(root))
    production = registry.alias("bench", "production")
    if production is None or "openvino" not in registry.card("bench", production).runtimes:
        keras.utils.set_random_seed(0)
        classifier, spec, size = classifier_and_spec()
        with tempfile.TemporaryDirectory() as tmp:
            saved_model = str(Path(tmp, "saved_model"))
            export_saved_model(classifier, spec, size, saved_model)
            images = [p.read_bytes() for p in paths[:256]]
            check, files = parity.export_checked(
                classifier, spec, size, tmp, saved_model, "bench images", images, [["a"]] * len(images)
            )
            card = ModelCard(
                name="bench",
                label_spec=spec,
                image_size=size,
                backbone="efficientnet_lite0",
                runtimes={"openvino": check},
            )
            registry.set_alias("bench", "production", registry.register(card, saved_model, files))
    return registry.resolve("bench").saved_model_uri


def naive(paths: list[Path]) -> float:
    """What a first script does: decode with PIL, call the Keras model on one image at a time."""
    classifier, _, size = classifier_and_spec()
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
        classifier(pixels[None], training=False).numpy()
    return len(paths) / (time.perf_counter() - started)


def ceiling(saved_model: str, paths: list[Path], batch: int = 64, runtime: str = "tf") -> float:
    """The registered model on batches already in memory, on ``runtime``: no I/O, no framework around it."""
    from models import runtimes
    from models.registry import resolve_saved_model

    runner = runtimes.load(resolve_saved_model(saved_model), runtime)
    data = [p.read_bytes() for p in paths]
    runner.predict_images(data[:batch])  # warm-up: tracing and first allocations
    started = time.perf_counter()
    for i in range(0, len(data), batch):
        runner.predict_images(data[i : i + batch])
    return len(data) / (time.perf_counter() - started)


def run_measured(command: list[str]) -> tuple[str, float, float]:
    """Runs a command; returns its stdout, wall seconds and its own peak RSS in MB.

    The RSS is sampled every 50 ms: the child's ru_maxrss from wait4 starts from this process's
    own peak at the fork (2.1 GB once the benchmark model is built), so it hid the child's.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        peak = 0
        with contextlib.suppress(psutil.Error):
            watched = psutil.Process(proc.pid)
            while proc.poll() is None:
                peak = max(peak, watched.memory_info().rss)
                time.sleep(0.05)
        proc.wait()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(command[:4])} ... failed:\n{err.read()[-3000:]}")
        return out.read(), wall, peak / 2**20


def _in_child(kind: str, work: Path, n: int, runtime: str = "tf") -> dict:
    """One measurement in a fresh process, so none inherits another's threads or memory."""
    command = [
        sys.executable,
        "-m",
        "bench.batch_throughput",
        "--measure",
        kind,
        "--runtime",
        runtime,
        "--work",
        str(work),
        "--images",
        str(n),
    ]
    stdout, _, peak_mb = run_measured(command)
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mb": round(peak_mb, 1)}


def beam_pipeline(paths: list[Path], registry: Path, work: Path, extra_flags: list[str], runtime: str = "tf") -> dict:
    """The real command in a child process: its own timing line, wall time and peak RSS."""
    csv_in, csv_out = work / "input.csv", work / f"predictions-{runtime}.csv"
    csv_out.unlink(missing_ok=True)  # the pipeline refuses to overwrite; this is the benchmark's own file
    with open(csv_in, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_uri", "id"])
        writer.writerows([str(p), i] for i, p in enumerate(paths))
    command = [
        sys.executable,
        "-m",
        "beam_pipelines.batch",
        f"--input={csv_in}",
        f"--output={csv_out}",
        f"--model_root={registry}",
        "--model=bench",
        "--progress_every=1000",
        f"--runtime={runtime}",
        *extra_flags,
    ]
    stdout, wall, peak_mb = run_measured(command)
    match = re.search(r"(\d+) records \((\d+) ok, (\d+) errors\) in ([\d.]+)s", stdout)
    records, errors, pipeline_s = int(match[1]), int(match[3]), float(match[4])
    with open(csv_out, newline="") as f:
        written = sum(1 for _ in csv.DictReader(f))
    assert records == written == len(paths) and errors == 0, (records, written, errors)
    return {
        "pipeline_seconds": pipeline_s,
        "process_seconds": round(wall, 2),
        "img_per_s": round(len(paths) / pipeline_s, 2),
        "img_per_s_whole_process": round(len(paths) / wall, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "flags": extra_flags,
        "output": str(csv_out),
    }


def differences(tf_csv: str, other_csv: str) -> dict:
    """How two pipelines' outputs of the same input differ: decisions and the largest score difference."""

    def read(path: str) -> dict[str, dict]:
        with open(path, newline="") as f:
            return {row["id"]: row for row in csv.DictReader(f)}

    a, b = read(tf_csv), read(other_csv)
    changed = sum(a[i]["labels"] != b[i]["labels"] for i in a)
    diff = max(abs(p - json.loads(b[i]["scores"])[label]) for i in a for label, p in json.loads(a[i]["scores"]).items())
    runtimes = sorted({row["runtime"] for row in b.values()})
    return {"rows": len(a), "decisions_changed": changed, "max_abs_diff": diff, "runtimes": runtimes}


RUNTIMES = ("tf", "openvino")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=256, help="JPEG side in pixels (>= 224)")
    parser.add_argument("--naive-images", type=int, default=300, help="(a) is slow: time it on this many")
    parser.add_argument(
        "--rounds", type=int, default=3, help="(b) and (c) alternate this many times; means are reported"
    )
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--beam-flags", default="", help="Extra flags for (c), e.g. '--batch_size=32'")
    parser.add_argument("--measure", choices=["naive", "ceiling"], help=argparse.SUPPRESS)
    parser.add_argument("--runtime", choices=RUNTIMES, default="tf", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = Path(args.work)

    if args.measure:  # a child process measuring one thing; prints one JSON line
        paths = make_jpegs(work / "images", args.images, args.size)
        saved_model = ModelRegistry(str(work / "models")).resolve("bench").saved_model_uri
        rate = naive(paths) if args.measure == "naive" else ceiling(saved_model, paths, runtime=args.runtime)
        print(json.dumps({"img_per_s": rate}))
        return 0

    print(f"generating {args.images} JPEGs ({args.size}x{args.size}) under {work}/images ...", flush=True)
    paths = make_jpegs(work / "images", args.images, args.size)
    make_model(work / "models", paths)
    gate = ModelRegistry(str(work / "models")).resolve("bench").card.runtimes["openvino"]
    print(f"OpenVINO artifact: {'passed' if gate.passed else 'refused'} the parity gate ({gate.reason})", flush=True)
    runtimes = RUNTIMES if gate.passed else ("tf",)

    print(f"(a) naive loop (PIL decode, one model call per image) on {args.naive_images} images ...", flush=True)
    a = _in_child("naive", work, args.naive_images)
    print(f"    {a['img_per_s']:.1f} img/s", flush=True)
    bs: dict[str, list[dict]] = {r: [] for r in runtimes}
    cs: dict[str, list[dict]] = {r: [] for r in runtimes}
    for r in range(1, args.rounds + 1):
        for runtime in runtimes:
            print(f"(b) round {r}, {runtime}: in-memory batches of 64, {len(paths)} images ...", flush=True)
            bs[runtime].append(_in_child("ceiling", work, len(paths), runtime))
            print(f"    {bs[runtime][-1]['img_per_s']:.1f} img/s", flush=True)
            print(f"(c) round {r}, {runtime}: Beam batch pipeline, CSV in -> CSV out ...", flush=True)
            cs[runtime].append(beam_pipeline(paths, work / "models", work, args.beam_flags.split(), runtime))
            c = cs[runtime][-1]
            print(
                f"    {c['img_per_s']:.1f} img/s over the pipeline run ({c['pipeline_seconds']:.1f}s); "
                f"{c['img_per_s_whole_process']:.1f} img/s counting process start-up",
                flush=True,
            )

    mean = lambda xs, key: sum(x[key] for x in xs) / len(xs)  # noqa: E731
    per_runtime = {}
    for runtime in runtimes:
        # Each round's b and c ran back to back; the mean of their ratios cancels the machine's drift.
        ratios = [c["img_per_s"] / b["img_per_s"] for b, c in zip(bs[runtime], cs[runtime], strict=True)]
        per_runtime[runtime] = {
            "ceiling_img_per_s": round(mean(bs[runtime], "img_per_s"), 2),
            "beam_img_per_s": round(mean(cs[runtime], "img_per_s"), 2),
            "beam_whole_process_img_per_s": round(mean(cs[runtime], "img_per_s_whole_process"), 2),
            "beam_peak_rss_mb": max(c["peak_rss_mb"] for c in cs[runtime]),
            "ceiling_peak_rss_mb": max(b["peak_rss_mb"] for b in bs[runtime]),
            "c_over_b": round(sum(ratios) / len(ratios), 3),
            "c_over_b_per_round": [round(x, 3) for x in ratios],
            "ceiling_rounds": bs[runtime],
            "beam_rounds": cs[runtime],
        }
    tf = per_runtime["tf"]
    a_rate = a["img_per_s"]
    figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": "efficientnet_lite0, 224x224 input, 3-class head",
        "images": len(paths),
        "jpeg_size": args.size,
        "naive": {**a, "images": args.naive_images},
        "naive_img_per_s": round(a_rate, 2),
        "openvino_gate": gate.model_dump(),
        "runtimes": per_runtime,
        # issue 2's figures, on TensorFlow as before
        "ceiling_img_per_s": tf["ceiling_img_per_s"],
        "beam_img_per_s": tf["beam_img_per_s"],
        "beam_peak_rss_mb": tf["beam_peak_rss_mb"],
        "c_over_b": tf["c_over_b"],
        "c_over_a": round(tf["beam_img_per_s"] / a_rate, 2),
        "targets": {"c_over_b": ">= 0.9", "beam_peak_rss_mb": "< 2048", "openvino_beam_over_tf_beam": ">= 1.8"},
    }
    print()
    print(f"  (a) naive                 {a_rate:8.1f} img/s")
    for runtime, f in per_runtime.items():
        print(
            f"  (b) ceiling, {runtime:<9}    {f['ceiling_img_per_s']:8.1f} img/s   (mean of {args.rounds}; "
            f"peak RSS {f['ceiling_peak_rss_mb']:.0f} MB)"
        )
        print(
            f"  (c) beam, {runtime:<9}       {f['beam_img_per_s']:8.1f} img/s   (peak RSS {f['beam_peak_rss_mb']:.0f} MB, "
            f"target < 2048); c/b = {f['c_over_b']:.3f} (target >= 0.9)"
        )
    if "openvino" in per_runtime:
        ov = per_runtime["openvino"]
        speedups = [o["img_per_s"] / t["img_per_s"] for t, o in zip(cs["tf"], cs["openvino"], strict=True)]
        diff = differences(cs["tf"][-1]["output"], cs["openvino"][-1]["output"])
        figures["openvino_beam_over_tf_beam"] = round(sum(speedups) / len(speedups), 3)
        figures["openvino_ceiling_over_tf_ceiling"] = round(ov["ceiling_img_per_s"] / tf["ceiling_img_per_s"], 3)
        figures["openvino_vs_tf_outputs"] = diff
        print(
            f"  OpenVINO / TensorFlow: pipeline {figures['openvino_beam_over_tf_beam']:.2f}x (target >= 1.8; rounds "
            f"{', '.join(f'{x:.2f}' for x in speedups)}), ceiling {figures['openvino_ceiling_over_tf_ceiling']:.2f}x; "
            f"outputs: {diff['decisions_changed']} of {diff['rows']} decisions changed, max |dp| {diff['max_abs_diff']:.1g}"
        )
    print(f"  c/a (TensorFlow) = {figures['c_over_a']:.1f}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"batch_throughput-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  figures saved to {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
