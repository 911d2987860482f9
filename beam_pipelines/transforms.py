"""Composable transforms shared by the batch and streaming pipelines.

``ClassifyImages`` is the core: input rows in, exactly one PredictionRecord per row out,
errors included. Reading the CSV and writing predictions are separate transforms so a
streaming pipeline can put Pub/Sub and BigQuery at the ends instead.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference

from beam_pipelines.input_row import InputRow
from beam_pipelines.model_handler import ImageModelHandler, parse_served_by
from beam_pipelines.model_updates import FollowAlias
from models import runtimes, storage
from models.errors import ImgclfError
from models.image_checks import check_image, read_image
from models.locations import UriNotAllowed, check_allowed
from models.prediction import ErrorCode, ImageError, PredictionRecord, csv_header
from models.registry import ResolvedModel, resolve_saved_model

log = logging.getLogger("imgclf.batch")
METRICS_NAMESPACE = "imgclf"


@dataclass(frozen=True)
class ReadPolicy:
    """Where rows may point: ``allowed`` prefixes (empty: anywhere), never inside ``internal`` stores.

    The API sets both for its batch jobs, so a CSV inside the allowed folder cannot make
    the service read ``/etc/passwd``; the error record then says nothing about the path.
    """

    allowed: tuple[str, ...] = ()
    internal: tuple[tuple[str, str], ...] = ()

    def check(self, uri: str) -> str:
        if not self.allowed:
            return uri
        try:
            return check_allowed(uri, self.allowed, internal=dict(self.internal))
        except UriNotAllowed:
            raise ImageError(ErrorCode.NOT_ALLOWED, "outside the locations this run may read") from None


class _ReadImage(beam.DoFn):
    ERRORS = "errors"

    def __init__(self, max_bytes: int, max_pixels: int, policy: ReadPolicy):
        self.max_bytes, self.max_pixels, self.policy = max_bytes, max_pixels, policy

    def process(self, row: InputRow) -> Iterator:
        try:
            if row.error:
                raise row.error
            if row.content is not None:  # the image came in the message itself
                data = row.content
            else:
                uri = self.policy.check(row.read_uri) if row.read_uri else row.read_uri
                data = read_image(uri, self.max_bytes)
            check_image(data, self.max_bytes, self.max_pixels)
        except ImageError as e:
            yield beam.pvalue.TaggedOutput(self.ERRORS, (row, e))
            return
        except ImgclfError as e:  # e.g. a URI with control characters: that row's error, not the run's
            yield beam.pvalue.TaggedOutput(self.ERRORS, (row, ImageError(ErrorCode.NOT_FOUND, str(e))))
            return
        yield row, data


class _ToRecord(beam.DoFn):
    """Probabilities -> labels, by the label spec of the version that produced them.

    With live model updates a new version may have other labels, so each result's
    version is looked up from the SavedModel URI it carries (once per version).
    """

    def __init__(self, model: ResolvedModel, top_k: int):
        self.model, self.top_k = model, top_k
        self.ok = Metrics.counter(METRICS_NAMESPACE, "records_ok")
        self.errors = Metrics.counter(METRICS_NAMESPACE, "records_error")

    def setup(self):
        self.versions = {self.model.saved_model_uri: self.model}
        self.latest = self.model  # what an image that never reached a model is attributed to

    def _version(self, saved_model_uri: str | None) -> ResolvedModel:
        if saved_model_uri and saved_model_uri not in self.versions:
            self.versions[saved_model_uri] = resolve_saved_model(saved_model_uri)
        return self.versions.get(saved_model_uri, self.model)

    def process(self, element: tuple[InputRow, PredictionResult | ImageError]) -> Iterator[PredictionRecord]:
        row, outcome = element
        model, runtime = self.latest, None
        if isinstance(outcome, PredictionResult):
            runtime, uri = parse_served_by(outcome.model_id)
            model = self.latest = self._version(uri)
            outcome = outcome.inference
        base = dict(
            image_uri=row.image_uri,
            model_name=model.name,
            model_version=model.version,
            runtime=runtime,
            extra=row.extra,
            message=row.message,
        )
        if isinstance(outcome, ImageError):
            self.errors.inc()
            yield PredictionRecord(**base, error=str(outcome))
            return
        spec = model.card.label_spec
        probabilities = np.asarray(outcome, dtype=np.float64)
        self.ok.inc()
        yield PredictionRecord(
            **base,
            labels=spec.decide(probabilities, self.top_k),
            scores={label: round(float(p), 6) for label, p in zip(spec.labels, probabilities, strict=False)},
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
    """InputRows -> PredictionRecords, one per row: read, check, RunInference, decide.

    ``runtime`` picks TensorFlow or the version's OpenVINO artifact (``models/runtimes.py``);
    ``follow`` makes a stream switch to each version a registry alias points at while it
    runs (``model_updates.py``); ``max_batch_wait_s`` lets a batch fill across bundles for
    at most that long, so a stream gets full batches without holding a lone image.
    """

    def __init__(
        self,
        model: ResolvedModel,
        batch_size: int = 64,
        top_k: int = 1,
        max_image_bytes: int = 20 * 1024 * 1024,
        max_image_pixels: int = 50_000_000,
        progress_every: int = 0,
        read_policy: ReadPolicy = ReadPolicy(),
        *,
        min_batch_size: int | None = None,
        max_batch_wait_s: float | None = None,
        follow: FollowAlias | None = None,
        runtime: runtimes.Runtime = "auto",
    ):
        super().__init__()
        self.runtime = runtime
        self.min_batch_size = min_batch_size or batch_size
        self.max_batch_wait_s = max_batch_wait_s
        self.follow = follow
        self.model = model
        self.batch_size = batch_size
        self.top_k = top_k
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.progress_every = progress_every
        self.read_policy = read_policy

    def expand(self, rows):
        images = rows | "ReadImages" >> beam.ParDo(
            _ReadImage(self.max_image_bytes, self.max_image_pixels, self.read_policy)
        ).with_outputs(_ReadImage.ERRORS, main="images")
        batching = {"min_batch_size": self.min_batch_size}
        if self.max_batch_wait_s:
            batching["max_batch_duration_secs"] = self.max_batch_wait_s
        handler = KeyedModelHandler(
            ImageModelHandler(
                self.model.saved_model_uri, self.batch_size, follow=self.follow, runtime=self.runtime, **batching
            )
        )
        inferred = images.images | "RunInference" >> RunInference(handler)
        if self.progress_every:
            inferred = inferred | "Progress" >> beam.ParDo(_LogProgress(self.progress_every))
        to_record = _ToRecord(self.model, self.top_k)
        return (inferred, images[_ReadImage.ERRORS]) | "Merge" >> beam.Flatten() | "ToRecords" >> beam.ParDo(to_record)


def csv_line(values) -> str:
    """One CSV row without its line end. The writer is told the real line end, since it quotes
    only the line-break characters of its terminator: with none, a cell holding a newline
    would go out unquoted and split into two rows."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().removesuffix("\r\n")


class WritePredictions(beam.PTransform):
    """Records as CSV (header, ';'-joined labels, JSON scores) or JSONL.

    ``num_shards=1`` writes exactly ``output``; otherwise shards are named
    ``<output stem>-SSSSS-of-NNNNN<ext>`` (0 lets the runner choose how many). Files are
    written under a hidden temporary name beside the output and moved into place once
    complete, so a reader never sees half a file, and Beam's sink, which deletes whatever
    already matches its target, only ever targets names this run made up.
    """

    def __init__(
        self,
        output: str,
        output_format: str,
        passthrough_columns: list[str],
        num_shards: int = 1,
        *,
        temp_stem: str | None = None,
    ):
        super().__init__()
        if output_format not in ("csv", "jsonl"):
            raise ValueError(f"output format must be csv or jsonl, got {output_format!r}")
        self.output = output
        self.output_format = output_format
        self.columns = passthrough_columns
        self.num_shards = num_shards
        self.temp_stem = temp_stem or temporary_stem(output)

    def expand(self, records):
        if self.output_format == "csv":
            lines = records | "ToCsv" >> beam.Map(lambda r: csv_line(r.to_csv_values()))
            header = csv_line(csv_header(self.columns))
        else:
            lines = records | "ToJson" >> beam.Map(lambda r: r.to_json())
            header = None
        if self.num_shards == 1:
            written = lines | "Write" >> beam.io.WriteToText(
                self.temp_stem, shard_name_template="", num_shards=1, header=header
            )
        else:
            written = lines | "Write" >> beam.io.WriteToText(
                self.temp_stem,
                file_name_suffix=posixpath.splitext(self.output)[1],
                num_shards=self.num_shards,
                header=header,
            )
        return written | "MoveIntoPlace" >> beam.Map(move_into_place, self.temp_stem, self.output)


def temporary_stem(output: str) -> str:
    """A hidden name beside ``output`` that no one else uses: ``<dir>/.<name>.imgclf-<random>``."""
    folder, name = posixpath.split(output)
    return posixpath.join(folder, f".{name}.imgclf-{uuid.uuid4().hex[:12]}")


def move_into_place(written: str, temp_stem: str, output: str) -> str:
    """Renames one finished temporary file to its final name; returns that name."""
    if not written.startswith(temp_stem):
        raise ValueError(f"{written} is not a file of this run")
    suffix = written[len(temp_stem) :]  # '' for one file, '-00000-of-00002.csv' for a shard
    final = output if not suffix else posixpath.splitext(output)[0] + suffix
    if storage.is_local(final):
        os.replace(storage.local_path(written), storage.local_path(final))  # refuses to replace a folder
    else:
        FileSystems.rename([written], [final])
    return final


def remove_temporary_files(temp_stem: str) -> None:
    """After a failed run: the temporary files it wrote, and nothing else."""
    for uri in storage.list_files(temp_stem + "*"):
        FileSystems.delete([uri])


def output_files(output: str, num_shards: int) -> list[str]:
    if num_shards == 1:
        return [output]
    stem, ext = posixpath.splitext(output)
    return storage.list_files(f"{stem}-*-of-*{ext}")
