"""Trainer: the ExampleGen TFRecords in, an exported candidate out (not yet registered).

With a tuner config enabled, KerasTuner first searches the head's hyperparameters on
the same cached features (models/tuning.py). The label spec keeps production's label order, so versions stay comparable; new labels
are appended only when validation allowed them.
"""

from __future__ import annotations

import glob

import tensorflow as tf

from beam_pipelines.example_gen import parse_example
from models.label_spec import LabelSpec, Task, infer_task
from models.manifest import SPLITS, Example
from models.registry import ModelCard
from models.train_config import TrainConfig
from models.training import Candidate, fit
from models.tuning import TunerConfig


def read_examples(examples_dir: str) -> tuple[list[Example], list[bytes]]:
    """Every example of every split, with its encoded image, in a stable order."""
    examples, data = [], []
    for split in SPLITS:
        files = sorted(glob.glob(f"{examples_dir}/{split}/*.tfrecord.gz"))
        if not files:
            continue
        records = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
        for raw in records.prefetch(tf.data.AUTOTUNE):
            e = parse_example(raw.numpy())
            examples.append(Example(e["uri"], e["labels"], e["split"], len(examples) + 1))
            data.append(e["image"])
    return examples, data


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
    candidate = fit(config, spec, examples, data, out_dir, production.version if production else None, tuner=tuner)
    return candidate, examples, data
