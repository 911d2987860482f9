"""Batch classification: a CSV of image URIs in, a CSV or JSONL of prediction records out.

Runs on the local runner by default and on Dataflow with the usual options, e.g.::

    python -m beam_pipelines.batch --input gs://b/in.csv --output gs://b/out.csv \\
        --model_root gs://b/models --runner DataflowRunner --project P --region R \\
        --temp_location gs://b/tmp --setup_file ./setup.py

``build_pipeline(p, options)`` builds it on any Pipeline (tests pass a TestPipeline);
``run(argv)`` parses flags, runs it and prints the counts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from beam_pipelines import run_status
from beam_pipelines.bigquery_sink import (
    PREDICTIONS_SCHEMA,
    WritePredictionsToBigQuery,
    ensure_columns,
    ensure_dataset,
    full_table_spec,
)
from beam_pipelines.csv_input import AUTO, DELIMITERS, CsvFormat, ReadCsvRows, read_header
from beam_pipelines.options import (
    BigQueryOutputOptions,
    ImageLimitOptions,
    ModelOptions,
    internal_stores,
    local_runner_by_default,
    split_list,
)
from beam_pipelines.transforms import (
    METRICS_NAMESPACE,
    ClassifyImages,
    ReadPolicy,
    WritePredictions,
    output_files,
    remove_temporary_files,
    temporary_stem,
)
from models import runtimes, storage
from models.errors import ImgclfError, InvalidInput, Unavailable, describe, exit_code
from models.locations import check_allowed, check_output
from models.logging_setup import configure_logging
from models.registry import ModelRegistry, ResolvedModel
from models.settings import get_settings

SINGLE_FILE_MAX_INPUT_BYTES = 64 * 1024 * 1024

log = logging.getLogger("imgclf.batch")


class BatchOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        # Not argparse-required: Beam parses every options class for every pipeline in the
        # process, so a required flag here would break unrelated pipelines. plan() checks them.
        parser.add_argument(
            "--input",
            help="CSV with a header and an 'image_uri' column (local or gs://); other columns are passed through.",
        )
        parser.add_argument(
            "--output",
            help="Output file (local or gs://); '.jsonl' writes JSON lines, anything else CSV. "
            "Optional with --output_table.",
        )
        parser.add_argument(
            "--input_encoding",
            default=AUTO,
            help="Text encoding of --input, e.g. cp1252; 'auto' (default) takes a BOM's, else UTF-8.",
        )
        parser.add_argument(
            "--input_delimiter",
            default=",",
            choices=DELIMITERS,
            help="Cell separator of --input (default ',').",
        )
        parser.add_argument(
            "--output_format",
            choices=["csv", "jsonl"],
            default=None,
            help="Override the format implied by --output's extension.",
        )
        parser.add_argument(
            "--num_shards",
            type=int,
            default=None,
            help="Output shards: 1 writes exactly --output, 0 lets the runner choose; default 1 for inputs up to 64 MiB, else 0.",
        )
        parser.add_argument(
            "--progress_every", type=int, default=500, help="Log a progress line every N images (0: never)."
        )
        parser.add_argument(
            "--summary_file",
            default=None,
            help="Local file that holds the run's status as JSON: running with the counts so far, then the "
            "counts, output files and model version, or why it failed (beam_pipelines/run_status.py).",
        )


@dataclass(frozen=True)
class BatchPlan:
    """What a run fixes before it starts: the model version, the columns, format, shards and read policy."""

    model: ResolvedModel
    columns: list[str]
    runtime: str  # what the version runs on here; a GPU worker with runtime auto takes TF
    output_format: str
    num_shards: int
    csv_format: CsvFormat = CsvFormat()
    read_policy: ReadPolicy = ReadPolicy()
    temp_stem: str | None = None  # where the output is written before it moves into place

    @property
    def passthrough_columns(self) -> list[str]:
        return [c for c in self.columns if c != "image_uri"]


def plan(options: PipelineOptions) -> BatchPlan:
    """Resolves all that can fail before any work starts: the CSV header, the output and the model."""
    opts = options.view_as(BatchOptions)
    model_opts = options.view_as(ModelOptions)
    table = options.view_as(BigQueryOutputOptions).output_table
    if not opts.input or not (opts.output or table):
        raise InvalidInput("an input CSV and an output (a file, or a BigQuery table with --output_table) are required")
    internal = internal_stores(model_opts.model_root, model_opts.protected_locations)
    policy = ReadPolicy(split_list(model_opts.allowed_read_prefixes), tuple(internal.items()))
    if policy.allowed:  # the CSV itself is read on the caller's behalf too
        check_allowed(opts.input, policy.allowed, "input", internal)
    if opts.output:
        check_output(opts.output, inputs=[opts.input], internal=internal)
    csv_format = CsvFormat(opts.input_encoding, opts.input_delimiter)
    columns = read_header(opts.input, csv_format)
    model = ModelRegistry(model_opts.model_root).resolve(
        model_opts.model, model_opts.alias or get_settings().default_alias, model_opts.model_version
    )
    runtime = runtimes.runtime_for(model.card, model_opts.runtime)  # RuntimeUnavailable now, not on the workers
    output = opts.output or ""
    output_format = opts.output_format or ("jsonl" if output.lower().endswith((".jsonl", ".json")) else "csv")
    num_shards = opts.num_shards
    if num_shards is None:
        num_shards = 1 if storage.size(opts.input) <= SINGLE_FILE_MAX_INPUT_BYTES else 0
    if table:
        table = full_table_spec(table, options.view_as(GoogleCloudOptions).project)
        ensure_dataset(table)
        ensure_columns(table, PREDICTIONS_SCHEMA)
    if not output:
        return BatchPlan(model, columns, runtime, output_format, num_shards, csv_format, policy)
    _check_writable(output)
    return BatchPlan(model, columns, runtime, output_format, num_shards, csv_format, policy, temporary_stem(output))


def _check_writable(output: str) -> None:
    """Fails now, not after the whole run, when the output's folder cannot take a file."""
    if not storage.is_local(output):
        return
    folder = Path(storage.local_path(output)).parent
    probe = folder / f".imgclf-probe-{uuid.uuid4().hex[:12]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InvalidInput(f"cannot write the output {output}: {e.strerror or describe(e)}") from None


def build_pipeline(p: beam.Pipeline, options: PipelineOptions, batch_plan: BatchPlan | None = None) -> beam.PCollection:
    """Adds read -> classify -> write to ``p`` and returns the PCollection of records."""
    opts = options.view_as(BatchOptions)
    model_opts = options.view_as(ModelOptions)
    bq = options.view_as(BigQueryOutputOptions)
    batch_plan = batch_plan or plan(options)
    records = (
        p
        | "ReadCsv" >> ReadCsvRows(opts.input, batch_plan.columns, batch_plan.csv_format)
        | "Classify"
        >> ClassifyImages(
            batch_plan.model,
            batch_size=model_opts.batch_size,
            top_k=model_opts.top_k,
            max_image_bytes=options.view_as(ImageLimitOptions).max_image_bytes,
            max_image_pixels=options.view_as(ImageLimitOptions).max_image_pixels,
            progress_every=opts.progress_every,
            read_policy=batch_plan.read_policy,
            runtime=model_opts.runtime,
        )
    )
    if opts.summary_file:
        records = records | "ReportProgress" >> beam.ParDo(run_status.ReportProgress(opts.summary_file))
    if opts.output:
        _ = records | "WritePredictions" >> WritePredictions(
            opts.output,
            batch_plan.output_format,
            batch_plan.passthrough_columns,
            batch_plan.num_shards,
            temp_stem=batch_plan.temp_stem,
        )
    if bq.output_table:
        refused = records | "WriteToBigQuery" >> WritePredictionsToBigQuery(
            full_table_spec(bq.output_table, options.view_as(GoogleCloudOptions).project), bq.bigquery_method
        )
        _ = refused | "CountRefused" >> beam.ParDo(_CountRefused())
    return records


class _CountRefused(beam.DoFn):
    """A batch has no dead-letter output: refused rows are logged and fail the run (see run())."""

    def setup(self):
        self.refused = Metrics.counter(METRICS_NAMESPACE, "rows_refused")

    def process(self, refused):
        table, row, errors = refused
        self.refused.inc()
        log.error("%s refused the row for %s: %s", table, row.get("image_uri"), errors)


_BEAM_EPILOG = """Beam options pass through unchanged, for example:
  --runner RUNNER          FnApiRunner (default, local) or DataflowRunner
  --project, --region, --temp_location, --staging_location, --setup_file ./setup.py,
  --num_workers, --max_num_workers, --machine_type, --sdk_container_image   (Dataflow)
  --direct_num_workers N   local parallelism
"""


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beam_pipelines.batch",
        description="Classify the images listed in a CSV; write one prediction record per row.",
        epilog=_BEAM_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for options_class in (BatchOptions, ModelOptions, ImageLimitOptions, BigQueryOutputOptions):
        options_class._add_argparse_args(parser)
    for action in parser._actions:
        action.required = action.dest == "input"
    return parser


def counts(result) -> dict[str, int]:
    found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    totals = {"records_ok": 0, "records_error": 0, "rows_refused": 0}
    for counter in found:
        if counter.key.metric.name in totals:
            totals[counter.key.metric.name] += counter.committed or counter.attempted or 0
    return {"ok": totals["records_ok"], "error": totals["records_error"], "refused": totals["rows_refused"]}


def run(argv: list[str] | None = None) -> int:
    """Runs a batch job to completion; prints where the output is and the ok/error counts."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argument_parser().parse_known_args(argv)  # --help, and clear messages for missing flags
    options = local_runner_by_default(argv)
    opts = options.view_as(BatchOptions)
    if opts.summary_file:
        run_status.ReportProgress.start(opts.summary_file)
    try:
        batch_plan = plan(options)
    except ImgclfError as e:
        return _failed(opts.summary_file, e)
    log.info(
        "classifying %s with %s version %d (%s) on %s -> %s",
        opts.input,
        batch_plan.model.name,
        batch_plan.model.version,
        batch_plan.model.card.label_spec.task.value,
        runtimes.describe(batch_plan.model.card, batch_plan.runtime),
        " and ".join(x for x in (opts.output, options.view_as(BigQueryOutputOptions).output_table) if x),
    )
    started = time.monotonic()
    p = beam.Pipeline(options=options)
    build_pipeline(p, options, batch_plan)
    try:
        result = p.run()
        result.wait_until_finish()
    except Exception as e:  # every bad row is a record, so this is the run itself failing
        if batch_plan.temp_stem:
            remove_temporary_files(batch_plan.temp_stem)
        log.debug("the pipeline failed", exc_info=True)
        return _failed(
            opts.summary_file, Unavailable(f"the batch run failed and wrote nothing to {opts.output}: {describe(e)}")
        )
    n = counts(result)
    files = output_files(opts.output, batch_plan.num_shards) if opts.output else []
    table = options.view_as(BigQueryOutputOptions).output_table
    seconds = time.monotonic() - started
    destinations = [", ".join(files) if len(files) <= 3 else f"{len(files)} files like {files[0]}"] if files else []
    if table:
        destinations.append(f"BigQuery table {table}")
    print(
        f"{n['ok'] + n['error']} records ({n['ok']} ok, {n['error']} errors) in {seconds:.1f}s "
        f"-> {' and '.join(destinations)}"
    )
    if n["refused"]:
        refused = Unavailable(f"BigQuery refused {n['refused']} rows of {table}; the log has each one and why")
        return _failed(opts.summary_file, refused)
    if opts.summary_file:
        run_status.write(
            opts.summary_file,
            run_status.SUCCEEDED,
            **n,
            output_files=files,
            model_name=batch_plan.model.name,
            model_version=batch_plan.model.version,
            runtime=batch_plan.runtime,
            seconds=round(seconds, 2),
        )
    return 0


def _failed(summary_file: str | None, failure: ImgclfError) -> int:
    print(f"error: {failure}", file=sys.stderr)
    if summary_file:
        run_status.write(summary_file, run_status.FAILED, reason=str(failure))
    return exit_code(failure)


def main() -> None:
    configure_logging()
    sys.exit(run())


if __name__ == "__main__":
    main()
