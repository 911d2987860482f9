"""Composable transforms shared by the batch and streaming pipelines.

``ClassifyImages`` is the core: input rows in, exactly one PredictionRecord per row out,
errors included. Reading the CSV and writing predictions are separate transforms so a
streaming pipeline can put Pub/Sub and BigQuery at the ends instead.
"""

from __future__ import annotations

import csv
import io
import logging
import posixpath
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_pipelines.model_handler import SavedModelImageHandler
from models import storage
from models.image_checks import check_image, read_image
from models.label_spec import LabelSpec
from models.manifest import resolve_uri
from models.prediction import ImageError, PredictionRecord, csv_header
from models.registry import ResolvedModel
from models.settings import get_settings

log = logging.getLogger("imgclf.batch")
METRICS_NAMESPACE = "imgclf"
LOCAL_RUNNER = "FnApiRunner"  # what DirectRunner runs batch jobs on, without its Prism download attempt


def local_runner_by_default(argv: list[str]) -> PipelineOptions:
    """Pipeline options from flags, on the local runner unless --runner names another."""
    options = PipelineOptions(argv)
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = LOCAL_RUNNER
    return options


class ImageLimitOptions(PipelineOptions):
    """Byte and pixel limits, shared by every pipeline that reads images (declared once: Beam
    parses all options classes together, so two declaring the same flag would clash)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        s = get_settings()
        parser.add_argument(
            "--max_image_bytes",
            type=int,
            default=s.max_image_bytes,
            help="Larger files become 'too_large' records (IMGCLF_MAX_IMAGE_BYTES).",
        )
        parser.add_argument(
            "--max_image_pixels",
            type=int,
            default=s.max_image_pixels,
            help="Images with more pixels become 'too_large' records (IMGCLF_MAX_IMAGE_PIXELS).",
        )


class CsvInputError(ValueError):
    """An input CSV that cannot be processed at all (as opposed to a bad row)."""


@dataclass(frozen=True)
class InputRow:
    """One input: the URI as given, the URI to read, and the other columns to pass through."""

    image_uri: str
    read_uri: str
    extra: dict[str, str] = field(default_factory=dict, hash=False)


def read_csv_header(path: str) -> list[str]:
    """Column names of an input CSV; fails at once, naming the problem, if unusable."""
    try:
        with beam.io.filesystems.FileSystems.open(path, compression_type="uncompressed") as f:
            first = f.readline().decode("utf-8-sig")
    except Exception as e:
        raise CsvInputError(f"cannot read input CSV {path}: {e}") from None
    columns = [c.strip() for c in next(csv.reader([first]), [])]
    if "image_uri" not in columns:
        raise CsvInputError(
            f"input CSV {path} has no 'image_uri' column in its header (found {columns or 'an empty file'}); "
            "the first line must name the columns, e.g. 'image_uri' or 'image_uri,id'"
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise CsvInputError(f"input CSV {path} repeats columns {duplicates}")
    return columns


def parse_row(line: str, columns: list[str], base_dir: str) -> InputRow:
    cells = next(csv.reader([line]), [])
    cells += [""] * (len(columns) - len(cells))
    values = dict(zip(columns, (c.strip() for c in cells), strict=False))
    uri = values.pop("image_uri")
    return InputRow(uri, resolve_uri(uri, base_dir) if uri else "", values)


class ReadCsvRows(beam.PTransform):
    """Rows of a headed CSV as InputRows; relative URIs resolve against the CSV's folder."""

    def __init__(self, path: str, columns: list[str]):
        super().__init__()
        self.path, self.columns = path, columns

    def expand(self, pbegin):
        base_dir = posixpath.dirname(self.path)
        return (
            pbegin
            | "ReadLines" >> beam.io.ReadFromText(self.path, skip_header_lines=1)
            | "SkipBlank" >> beam.Filter(lambda line: line.strip() != "")
            | "Parse" >> beam.Map(parse_row, self.columns, base_dir)
        )


class _ReadImage(beam.DoFn):
    ERRORS = "errors"

    def __init__(self, max_bytes: int, max_pixels: int):
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    def process(self, row: InputRow) -> Iterator:
        try:
            data = read_image(row.read_uri, self.max_bytes)
            check_image(data, self.max_bytes, self.max_pixels)
        except ImageError as e:
            yield beam.pvalue.TaggedOutput(self.ERRORS, (row, e))
            return
        yield row, data


class _ToRecord(beam.DoFn):
    def __init__(self, model_name: str, model_version: int, spec: LabelSpec, top_k: int):
        self.model_name, self.model_version, self.spec, self.top_k = model_name, model_version, spec, top_k
        self.ok = Metrics.counter(METRICS_NAMESPACE, "records_ok")
        self.errors = Metrics.counter(METRICS_NAMESPACE, "records_error")

    def process(self, element: tuple[InputRow, PredictionResult | ImageError]) -> Iterator[PredictionRecord]:
        row, outcome = element
        base = dict(
            image_uri=row.image_uri, model_name=self.model_name, model_version=self.model_version, extra=row.extra
        )
        if isinstance(outcome, PredictionResult):
            outcome = outcome.inference
        if isinstance(outcome, ImageError):
            self.errors.inc()
            yield PredictionRecord(**base, error=str(outcome))
            return
        probabilities = np.asarray(outcome, dtype=np.float64)
        self.ok.inc()
        yield PredictionRecord(
            **base,
            labels=self.spec.decide(probabilities, self.top_k),
            scores={label: round(float(p), 6) for label, p in zip(self.spec.labels, probabilities, strict=False)},
        )


class _LogProgress(beam.DoFn):
    """Every ``every`` images out of the model, a line with the count and the rate so far."""

    def __init__(self, every: int):
        self.every = every

    def setup(self):
        self.count, self.started = 0, time.monotonic()

    def process(self, element):
        self.count += 1
        if self.count % self.every == 0:
            rate = self.count / max(time.monotonic() - self.started, 1e-9)
            log.info("classified %d images, %.0f img/s", self.count, rate)
        yield element


class ClassifyImages(beam.PTransform):
    """InputRows -> PredictionRecords, one per row: read, check, RunInference, decide."""

    def __init__(
        self,
        model: ResolvedModel,
        batch_size: int = 64,
        top_k: int = 1,
        max_image_bytes: int = 20 * 1024 * 1024,
        max_image_pixels: int = 50_000_000,
        progress_every: int = 0,
    ):
        super().__init__()
        self.model = model
        self.batch_size = batch_size
        self.top_k = top_k
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.progress_every = progress_every

    def expand(self, rows):
        images = rows | "ReadImages" >> beam.ParDo(
            _ReadImage(self.max_image_bytes, self.max_image_pixels)
        ).with_outputs(_ReadImage.ERRORS, main="images")
        handler = KeyedModelHandler(SavedModelImageHandler(self.model.saved_model_uri, self.batch_size))
        inferred = images.images | "RunInference" >> RunInference(handler)
        if self.progress_every:
            inferred = inferred | "Progress" >> beam.ParDo(_LogProgress(self.progress_every))
        to_record = _ToRecord(self.model.name, self.model.version, self.model.card.label_spec, self.top_k)
        return (inferred, images[_ReadImage.ERRORS]) | "Merge" >> beam.Flatten() | "ToRecords" >> beam.ParDo(to_record)


def csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


class WritePredictions(beam.PTransform):
    """Records as CSV (header, ';'-joined labels, JSON scores) or JSONL.

    ``num_shards=1`` writes exactly ``output``; otherwise shards are named
    ``<output stem>-SSSSS-of-NNNNN<ext>`` (0 lets the runner choose how many).
    """

    def __init__(self, output: str, output_format: str, passthrough_columns: list[str], num_shards: int = 1):
        super().__init__()
        if output_format not in ("csv", "jsonl"):
            raise ValueError(f"output format must be csv or jsonl, got {output_format!r}")
        self.output = output
        self.output_format = output_format
        self.columns = passthrough_columns
        self.num_shards = num_shards

    def expand(self, records):
        if self.output_format == "csv":
            lines = records | "ToCsv" >> beam.Map(lambda r: csv_line(r.to_csv_values()))
            header = csv_line(csv_header(self.columns))
        else:
            lines = records | "ToJson" >> beam.Map(lambda r: r.to_json())
            header = None
        if self.num_shards == 1:
            return lines | "Write" >> beam.io.WriteToText(
                self.output, shard_name_template="", num_shards=1, header=header
            )
        stem, ext = posixpath.splitext(self.output)
        return lines | "Write" >> beam.io.WriteToText(
            stem, file_name_suffix=ext, num_shards=self.num_shards, header=header
        )


def output_files(output: str, num_shards: int) -> list[str]:
    if num_shards == 1:
        return [output]
    stem, ext = posixpath.splitext(output)
    return storage.list_files(f"{stem}-*-of-*{ext}")
