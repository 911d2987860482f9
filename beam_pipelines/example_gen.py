"""ExampleGen: a manifest plus label corrections in, TFRecord shards of tf.train.Example per split out.

The latest correction for an image wins over an older one and over the manifest's label;
an image known only from corrections (labelled in the dashboard) joins the data. Splits
come from the manifest or a stable hash of the URI, so an image never moves between
train and test across runs. Images that cannot be read or decoded are counted and listed
in ``unreadable.csv``, never written. ``statistics.json`` feeds data validation.

Corrections CSV: ``image_uri,labels,corrected_at`` (ISO-8601; later wins).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines.csv_input import ReadCsvRows, read_header
from beam_pipelines.input_row import InputRow
from beam_pipelines.options import ImageLimitOptions, local_runner_by_default
from beam_pipelines.transforms import csv_line
from models import storage
from models.image_checks import check_image, read_image
from models.manifest import SPLITS, hash_split, parse_labels
from models.prediction import ErrorCode, ImageError


class ExampleGenOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--manifest", help="Manifest CSV: image_uri,labels[,split].")
        parser.add_argument(
            "--corrections", default=None, help="Optional corrections CSV: image_uri,labels,corrected_at."
        )
        parser.add_argument("--output_dir", help="Where <split>/*.tfrecord.gz, statistics.json, unreadable.csv go.")


def image_key(uri: str) -> str:
    """One image, one key: a relative local path (a manifest's), an absolute one (the label
    store's) and a ``file://`` URI of the same file must meet in the join."""
    return os.path.abspath(storage.local_path(uri)) if storage.is_local(uri) else uri


def merge_labels(
    element: tuple[str, dict[str, list[InputRow]]],
) -> Iterator[tuple[InputRow, tuple[str, ...], str, str]]:
    """(row, labels, split, source) for one image: the latest correction, else the manifest."""
    _, grouped = element
    manifest, corrections = grouped["manifest"], grouped["corrections"]
    base = manifest[0] if manifest else None
    if corrections:
        latest = max(corrections, key=lambda r: r.extra.get("corrected_at", "").strip())
        row, labels, source = base or latest, parse_labels(latest.extra.get("labels")), "correction"
    elif base is not None:
        row, labels, source = base, parse_labels(base.extra.get("labels")), "manifest"
    else:
        return
    split = (base.extra.get("split", "").strip() if base else "") or hash_split(row.image_uri.strip())
    yield row, labels, split, source


class _ToExample(beam.DoFn):
    """Reads and fully decodes an image; a tf.train.Example, or an error row for unreadable.csv."""

    UNREADABLE = "unreadable"

    def __init__(self, max_bytes: int, max_pixels: int):
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    def process(self, merged):
        row, labels, split, source = merged
        try:
            if row.error:  # a row the CSV reader could not use
                raise row.error
            data = read_image(row.read_uri, self.max_bytes)
            width, height = check_image(data, self.max_bytes, self.max_pixels)
            try:
                tf.io.decode_image(data, channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError as e:
                raise ImageError(ErrorCode.DECODE_ERROR, str(e.message).splitlines()[0][:200]) from None
        except ImageError as e:
            yield beam.pvalue.TaggedOutput(self.UNREADABLE, (row.image_uri, split, str(e)))
            return
        feature = {
            "image/encoded": _bytes([data]),
            "image/uri": _bytes([row.read_uri.encode()]),
            "labels": _bytes([label.encode() for label in labels]),
            "split": _bytes([split.encode()]),
            "source": _bytes([source.encode()]),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        yield split, example.SerializeToString(), labels, (width, height)


def _bytes(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def parse_example(serialized: bytes) -> dict:
    """The fields of one written example, for readers outside tf.data."""
    example = tf.train.Example.FromString(serialized)
    f = example.features.feature
    return {
        "image": f["image/encoded"].bytes_list.value[0],
        "uri": f["image/uri"].bytes_list.value[0].decode(),
        "labels": tuple(v.decode() for v in f["labels"].bytes_list.value),
        "split": f["split"].bytes_list.value[0].decode(),
        "source": f["source"].bytes_list.value[0].decode(),
    }


def _statistics(rows: list[tuple[str, tuple[str, ...], tuple[int, int]]], unreadable: list[tuple]) -> dict:
    stats: dict = {"splits": {}, "unreadable": len(unreadable)}
    for split in SPLITS:
        mine = [r for r in rows if r[0] == split]
        label_counts: dict[str, int] = {}
        for _, labels, _ in mine:
            for label in labels:
                label_counts[label] = label_counts.get(label, 0) + 1
        widths = [w for _, _, (w, _) in mine] or [0]
        heights = [h for _, _, (_, h) in mine] or [0]
        stats["splits"][split] = {
            "examples": len(mine),
            "unlabelled": sum(1 for _, labels, _ in mine if not labels),
            "label_counts": dict(sorted(label_counts.items())),
            "width": {"min": min(widths), "max": max(widths), "mean": sum(widths) / len(widths)},
            "height": {"min": min(heights), "max": max(heights), "mean": sum(heights) / len(heights)},
        }
    return stats


def _write_json(stats: dict, path: str) -> None:
    storage.write_text(path, json.dumps(stats, indent=2))


def build_pipeline(p: beam.Pipeline, options: PipelineOptions) -> None:
    opts = options.view_as(ExampleGenOptions)
    limits = options.view_as(ImageLimitOptions)
    if not opts.manifest or not opts.output_dir:
        raise ValueError("--manifest and --output_dir are required")

    def keyed(row: InputRow, source: str) -> tuple[str, InputRow]:
        # A bad row has no usable URI: its own key keeps it apart, so it reaches unreadable.csv.
        return (f"invalid-row:{source}:{row.line}" if row.error else image_key(row.read_uri)), row

    sources = {}
    for name, path, needed in (
        ("manifest", opts.manifest, ("labels",)),
        ("corrections", opts.corrections, ("labels", "corrected_at")),
    ):
        if not path:
            sources[name] = p | f"No{name.title()}" >> beam.Create([])
            continue
        columns = read_header(path)
        missing = [c for c in needed if c not in columns]
        if missing:
            raise ValueError(f"{path} lacks columns {missing}")
        rows = p | f"Read{name.title()}" >> ReadCsvRows(path, columns)
        sources[name] = rows | f"Key{name.title()}" >> beam.Map(keyed, name)
    merged = sources | "Join" >> beam.CoGroupByKey() | "Merge" >> beam.FlatMap(merge_labels)
    results = merged | "ToExample" >> beam.ParDo(
        _ToExample(limits.max_image_bytes, limits.max_image_pixels)
    ).with_outputs(_ToExample.UNREADABLE, main="examples")
    out = opts.output_dir.rstrip("/")
    for split in SPLITS:
        _ = (
            results.examples
            | f"Only{split.title()}" >> beam.Filter(lambda e, s=split: e[0] == s)
            | f"Serialized{split.title()}" >> beam.Map(lambda e: e[1])
            | f"Write{split.title()}" >> beam.io.WriteToTFRecord(f"{out}/{split}/data", file_name_suffix=".tfrecord.gz")
        )
    unreadable = results[_ToExample.UNREADABLE]
    _ = (
        unreadable
        | "UnreadableCsv" >> beam.Map(csv_line)
        | "WriteUnreadable"
        >> beam.io.WriteToText(
            f"{out}/unreadable.csv", shard_name_template="", num_shards=1, header="image_uri,split,error"
        )
    )
    summaries = results.examples | "Summaries" >> beam.Map(lambda e: (e[0], e[2], e[3]))
    _ = (
        summaries
        | "AllSummaries" >> beam.combiners.ToList()
        | "Statistics" >> beam.Map(_statistics, beam.pvalue.AsList(unreadable))
        | "WriteStatistics" >> beam.Map(_write_json, f"{out}/statistics.json")
    )


def run(argv: list[str] | None = None) -> dict:
    """Runs ExampleGen to completion; returns the statistics it wrote."""
    options = local_runner_by_default(list(sys.argv[1:] if argv is None else argv))
    p = beam.Pipeline(options=options)
    build_pipeline(p, options)
    p.run().wait_until_finish()
    return json.loads(storage.read_text(options.view_as(ExampleGenOptions).output_dir.rstrip("/") + "/statistics.json"))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
