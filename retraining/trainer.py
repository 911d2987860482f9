"""Trainer: the ExampleGen TFRecords in, an exported candidate out (not yet registered).

With a tuner config enabled, KerasTuner first searches the head's hyperparameters on
the same cached features (models/tuning.py). The label spec keeps production's label order, so versions stay comparable; new labels
are appended only when validation allowed them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tfx_bsl.public import tfxio

from models import storage
from models.label_spec import LabelSpec, Task, infer_task
from models.manifest import SPLITS, Example
from models.registry import ModelCard
from models.train_config import TrainConfig
from models.training import Candidate, fit
from models.tuning import TunerConfig

_COLUMNS = ("image/encoded", "image/uri", "labels", "split")


def _shards(examples_uri: str, split: str) -> list[str]:
    return storage.list_files(f"{examples_uri.rstrip('/')}/{split}/*.tfrecord.gz")


def read_examples(examples_uri: str) -> tuple[list[Example], list[bytes]]:
    """Every example of every split, with its encoded image, in a stable order, from a folder or gs:// prefix.

    TFXIO decodes the tf.Examples into Arrow record batches, as TFX's own Trainer reads them.
    Shards under gs:// are first copied to local scratch through the same storage layer every
    other reader uses (TensorFlow's own GCS client has no emulator endpoint to test against);
    the Trainer holds the images in memory anyway, so the copy costs disk, not a second read.
    """
    examples: list[Example] = []
    data: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="imgclf-examples-") as scratch:
        for split in SPLITS:
            files = [_local_copy(uri, Path(scratch, split)) for uri in _shards(examples_uri, split)]
            if not files:
                continue
            source = tfxio.TFExampleRecord(file_pattern=files)
            for batch in source.RecordBatches(tfxio.RecordBatchesOptions(batch_size=256, shuffle=False, num_epochs=1)):
                columns = {name: batch.column(name).to_pylist() for name in _COLUMNS}
                for image, uri, labels, split_ in zip(*(columns[c] for c in _COLUMNS), strict=True):
                    labels = tuple(v.decode() for v in labels or [])
                    examples.append(Example(uri[0].decode(), labels, split_[0].decode(), len(examples) + 1))
                    data.append(image[0])
    return examples, data


def _local_copy(uri: str, folder: Path) -> str:
    if storage.is_local(uri):
        return storage.local_path(uri)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / uri.rsplit("/", 1)[-1]
    with storage.open_for_read(uri) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return str(target)


def label_spec_for(examples: list[Example], production: ModelCard | None, task: Task | None) -> LabelSpec:
    seen = sorted({label for e in examples for label in e.labels})
    if production is not None:
        labels = list(production.label_spec.labels) + [x for x in seen if x not in production.label_spec.labels]
        return LabelSpec(task=production.label_spec.task, labels=labels)
    return LabelSpec(task=task or infer_task([e.labels for e in examples]), labels=seen)


def train_candidate(
    config: TrainConfig, examples_dir: str, production: ModelCard | None, out_dir: str, tuner: TunerConfig | None = None
) -> tuple[Candidate, list[Example], list[bytes]]:
    examples, data = read_examples(examples_dir)
    spec = label_spec_for(examples, production, config.task)
    if config.labels:
        spec = LabelSpec(task=spec.task, labels=config.labels)
    candidate = fit(
        config, spec, examples, data, out_dir, parent_version=production.version if production else None, tuner=tuner
    )
    return candidate, examples, data
