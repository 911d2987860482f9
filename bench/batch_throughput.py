"""``make bench``: batch classification throughput on the same JPEGs, three ways, one run.

(a) naive: PIL decode + resize, one model call per image;
(b) ceiling: the exported signature on in-memory batches of 64, in-process;
(c) the Beam batch pipeline end to end (CSV in, CSV out), as ``python -m beam_pipelines.batch``.

Each runs in a fresh process; (b) and (c) alternate for a few rounds because this
machine's speed drifts by +-10% between minutes. Prints images/second, c/b (the mean of
each round's ratio) and c/a, and the peak RSS of (c); writes the figures as JSON under
bench/results/. Targets (issue 2): c/b >= 0.9, peak RSS of (c) < 2 GB.
"""

from __future__ import annotations

import argparse
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
from PIL import Image

import models  # noqa: F401  (quiet TensorFlow start-up)

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


def make_model(root: Path) -> str:
    """Registers the benchmark model as 'bench' (once) and returns its SavedModel path."""
    from models.export import export_saved_model
    from models.registry import ModelCard, ModelRegistry

    registry = ModelRegistry(str(root))
    if registry.alias("bench", "production") is None:
        classifier, spec, size = classifier_and_spec()
        export_dir = root.parent / "export"
        export_saved_model(classifier, spec, size, str(export_dir))
        card = ModelCard(name="bench", label_spec=spec, image_size=size, backbone="efficientnet_lite0")
        registry.set_alias("bench", "production", registry.register(card, str(export_dir)))
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


def ceiling(saved_model: str, paths: list[Path], batch: int = 64) -> float:
    """The exported signature on batches already in memory: no I/O, no framework around it."""
    import tensorflow as tf

    predict = tf.saved_model.load(saved_model).signatures["serving_default"]
    data = [p.read_bytes() for p in paths]
    predict(image_bytes=tf.constant(data[:batch]))  # warm-up: tracing and first allocations
    started = time.perf_counter()
    for i in range(0, len(data), batch):
        predict(image_bytes=tf.constant(data[i : i + batch]))["probabilities"].numpy()
    return len(data) / (time.perf_counter() - started)


def run_measured(command: list[str]) -> tuple[str, float, float]:
    """Runs a command; returns its stdout, wall seconds and its own peak RSS in MB.

    os.wait4 reports that one child's resources, where RUSAGE_CHILDREN would give the
    largest of all children so far.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(command[:4])} ... failed:\n{err.read()[-3000:]}")
        return out.read(), wall, usage.ru_maxrss / 1024


def _in_child(kind: str, work: Path, n: int) -> dict:
    """One measurement in a fresh process, so none inherits another's threads or memory."""
    command = [
        sys.executable,
        "-m",
        "bench.batch_throughput",
        "--measure",
        kind,
        "--work",
        str(work),
        "--images",
        str(n),
    ]
    stdout, _, peak_mb = run_measured(command)
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mb": round(peak_mb, 1)}


def beam_pipeline(paths: list[Path], registry: Path, work: Path, extra_flags: list[str]) -> dict:
    """The real command in a child process: its own timing line, wall time and peak RSS."""
    csv_in, csv_out = work / "input.csv", work / "predictions.csv"
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
    }


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
    args = parser.parse_args(argv)
    work = Path(args.work)

    if args.measure:  # a child process measuring one thing; prints one JSON line
        paths = make_jpegs(work / "images", args.images, args.size)
        saved_model = str(work / "models" / "bench" / "versions" / "1" / "saved_model")
        rate = naive(paths) if args.measure == "naive" else ceiling(saved_model, paths)
        print(json.dumps({"img_per_s": rate}))
        return 0

    print(f"generating {args.images} JPEGs ({args.size}x{args.size}) under {work}/images ...", flush=True)
    paths = make_jpegs(work / "images", args.images, args.size)
    make_model(work / "models")

    print(f"(a) naive loop (PIL decode, one model call per image) on {args.naive_images} images ...", flush=True)
    a = _in_child("naive", work, args.naive_images)
    print(f"    {a['img_per_s']:.1f} img/s", flush=True)
    bs, cs = [], []
    for r in range(1, args.rounds + 1):
        print(f"(b) round {r}: signature on in-memory batches of 64, {len(paths)} images ...", flush=True)
        bs.append(_in_child("ceiling", work, len(paths)))
        print(f"    {bs[-1]['img_per_s']:.1f} img/s", flush=True)
        print(f"(c) round {r}: Beam batch pipeline, CSV in -> CSV out, {len(paths)} images ...", flush=True)
        cs.append(beam_pipeline(paths, work / "models", work, args.beam_flags.split()))
        print(
            f"    {cs[-1]['img_per_s']:.1f} img/s over the pipeline run ({cs[-1]['pipeline_seconds']:.1f}s); "
            f"{cs[-1]['img_per_s_whole_process']:.1f} img/s counting process start-up",
            flush=True,
        )

    mean = lambda xs, key: sum(x[key] for x in xs) / len(xs)  # noqa: E731
    a_rate, b_rate, c_rate = a["img_per_s"], mean(bs, "img_per_s"), mean(cs, "img_per_s")
    c_rss = max(c["peak_rss_mb"] for c in cs)
    # Each round's b and c ran back to back; the mean of their ratios cancels the machine's drift.
    ratios = [c["img_per_s"] / b["img_per_s"] for b, c in zip(bs, cs, strict=True)]
    c_over_b = sum(ratios) / len(ratios)
    figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": "efficientnet_lite0, 224x224 input, 3-class head",
        "images": len(paths),
        "jpeg_size": args.size,
        "naive": {**a, "images": args.naive_images},
        "ceiling_rounds": bs,
        "beam_rounds": cs,
        "naive_img_per_s": round(a_rate, 2),
        "ceiling_img_per_s": round(b_rate, 2),
        "beam_img_per_s": round(c_rate, 2),
        "beam_whole_process_img_per_s": round(mean(cs, "img_per_s_whole_process"), 2),
        "beam_peak_rss_mb": c_rss,
        "c_over_b": round(c_over_b, 3),
        "c_over_b_per_round": [round(r, 3) for r in ratios],
        "c_over_a": round(c_rate / a_rate, 2),
        "targets": {"c_over_b": ">= 0.9", "beam_peak_rss_mb": "< 2048"},
    }
    print()
    print(f"  (a) naive      {a_rate:8.1f} img/s")
    print(
        f"  (b) ceiling    {b_rate:8.1f} img/s   (mean of {len(bs)}; peak RSS {max(b['peak_rss_mb'] for b in bs):.0f} MB)"
    )
    print(f"  (c) beam       {c_rate:8.1f} img/s   (mean of {len(cs)}; peak RSS {c_rss:.0f} MB, target < 2048)")
    print(
        f"  c/b = {c_over_b:.3f} (target >= 0.9; rounds {', '.join(f'{r:.3f}' for r in ratios)})"
        f"   c/a = {figures['c_over_a']:.1f}"
    )
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"batch_throughput-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  figures saved to {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
