"""``make demo``: the main job end to end on real data, through the commands users run.

ELPV solar-cell images (PyPI ``elpv-dataset``) -> ``imgclf train`` (EfficientNet-Lite0,
ImageNet weights) -> ``imgclf classify`` on the held-out quarter -> the predictions into the
label store, where ``imgclf dashboard`` shows the least confident first -> a short summary.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from labeling_dashboard.settings import DashboardSettings
from models.datasets import elpv_label_order, write_elpv
from models.settings import get_settings

MODEL = "elpv-demo"
BUDGET = "5m"


def _step(n: int, text: str) -> None:
    print(f"\n[{n}/5] {text}", flush=True)


def _imgclf(*args: str) -> None:
    command = [sys.executable, "-m", "imgclf.cli", *args]
    print("  $ imgclf " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def main() -> int:
    settings = get_settings()
    data_dir = Path(settings.data_dir, "demo")
    started = time.monotonic()

    _step(1, f"Writing the ELPV dataset (2,624 solar-cell images, PyPI elpv-dataset) to {data_dir}/elpv")
    paths = write_elpv(str(data_dir / "elpv"), "binary")
    with open(paths["manifest"]) as f:
        splits = [row["split"] for row in csv.DictReader(f)]
    print(
        f"  manifest {paths['manifest']}: "
        + ", ".join(f"{s} {splits.count(s)}" for s in ("train", "validation", "test"))
    )

    _step(2, f"Training a binary classifier (functional vs defective) on EfficientNet-Lite0 within {BUDGET}")
    print(
        f"  (--budget {BUDGET} keeps the demo short; with no --budget, train gives itself up to 30 minutes\n"
        "   here and fine-tunes further: see docs/benchmarks.md)"
    )
    _imgclf(
        "train",
        "--manifest",
        paths["manifest"],
        "--model",
        MODEL,
        "--labels",
        ",".join(elpv_label_order("binary")),
        "--budget",
        BUDGET,
        "--promote",
        "--model-root",
        settings.model_root,
    )

    _step(3, "Batch-classifying the held-out test images with the Beam pipeline (local runner)")
    output = str(data_dir / "predictions.csv")
    _imgclf(
        "classify",
        "--input",
        paths["holdout"],
        "--output",
        output,
        "--model",
        MODEL,
        "--model_root",
        settings.model_root,
    )

    _step(4, "Loading the predictions into the label store for review (imgclf dashboard)")
    _imgclf("labels", "import", output, "--relative-to", str(data_dir / "elpv"), "--model-root", settings.model_root)
    retrain_config = _write_retrain_config(paths["manifest"], settings)

    _step(5, "Summary")
    with open(output, newline="") as f:
        rows = list(csv.DictReader(f))
    ok = [r for r in rows if not r["error"]]
    correct = sum(r["labels"] == r["input_labels"] for r in ok)
    version = int(ok[0]["model_version"]) if ok else 0
    card = (
        json.loads(Path(settings.model_root, MODEL, "versions", str(version), "model.json").read_text()) if ok else {}
    )
    report = Path(settings.model_root, MODEL, "versions", str(version), "report")
    print(f"  images classified:  {len(ok)} ok, {len(rows) - len(ok)} errors")
    if ok:
        print(
            f"  accuracy on held-out images: {correct / len(ok):.4f} ({correct}/{len(ok)}); "
            f"published baselines on ELPV: SVM 0.8244, CNN 0.8842 (Deitsch et al. 2019)"
        )
        print(f"  model: {MODEL} version {version}, threshold {card['label_spec']['thresholds']}")
        ran = sorted({r["runtime"] for r in ok})
        gate = card.get("runtimes", {}).get("openvino")
        verdict = (
            f"OpenVINO parity gate {'passed' if gate['passed'] else 'refused it'}: {gate['reason']}"
            + (
                f"; {gate['images_per_s']:.0f} img/s against TensorFlow's {gate['tf_images_per_s']:.0f}"
                if gate["passed"]
                else ""
            )
            if gate
            else "no OpenVINO artifact"
        )
        print(f"  runtime: {', '.join(ran)} (IMGCLF_RUNTIME={settings.runtime}; {verdict})")
    print(f"  predictions: {output}")
    print(f"    open with:  column -s, -t < {output} | less -S     (or pandas.read_csv)")
    print(f"  pictures:    {report}/confusion_matrix.png, {report}/training_curves.png")
    print(f"  model card:  imgclf models show {MODEL} --model-root {settings.model_root}")
    print("  review:      imgclf dashboard   (http://127.0.0.1:8501: the least confident predictions first)")
    print("  corrections: imgclf labels export --output corrections.csv")
    print(f"  retrain:     imgclf retrain --config {retrain_config}   (reads the label store directly)")
    print(f"  total time:  {time.monotonic() - started:.0f}s")
    return 0


def _write_retrain_config(manifest: str, settings) -> str:
    """The retraining config the dashboard's Retrain page and ``imgclf retrain`` use; a file
    someone else wrote there is left alone."""
    path = Path(DashboardSettings().retrain_config or f"{settings.data_dir}/retrain.yaml")
    text = (
        "# Written by make demo: retrain the demo model on its manifest plus the label store's labels.\n"
        f"model_name: {MODEL}\nmanifest: {manifest}\ncorrections: {settings.labels_db}\n"
        f"model_root: {settings.model_root}\n"
        f"trainer: {{budget: {BUDGET}, labels: [{', '.join(elpv_label_order('binary'))}]}}\n"
    )
    if path.exists() and not path.read_text().startswith("# Written by make demo"):
        print(f"  {path} exists and was not written by the demo: left as it is")
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
