"""Streaming classification: Pub/Sub messages in, predictions into BigQuery and/or files, bad ones to dead letters.

Runs on the local streaming runner by default and on Dataflow with the usual options::

    python -m beam_pipelines.streaming --input_subscription projects/P/subscriptions/S \\
        --output_table P:imgclf.predictions --dead_letter_topic projects/P/topics/T \\
        --model_root gs://b/models --runner DataflowRunner --project P --region R \\
        --temp_location gs://b/tmp --enable_streaming_engine --setup_file ./setup.py

Every message becomes exactly one prediction row or one dead letter (docs/streaming.md).
``build_pipeline(p, options)`` builds it on any Pipeline (tests pass a TestPipeline);
``run(argv)`` parses flags, runs it until stopped (or for ``--run_for_s``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.gcp.pubsub import ReadFromPubSub, WriteToPubSub
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from beam_pipelines.bigquery_sink import (
    FILE_LOADS,
    PREDICTIONS_SCHEMA,
    WritePredictionsToBigQuery,
    WriteRowsToBigQuery,
    ensure_columns,
    ensure_dataset,
    full_table_spec,
)
from beam_pipelines.dead_letters import DEAD_LETTER_PARTITIONING, DEAD_LETTER_SCHEMA, DeadLetter
from beam_pipelines.model_updates import FollowAlias
from beam_pipelines.options import (
    BigQueryOutputOptions,
    ImageLimitOptions,
    ModelOptions,
    internal_stores,
    local_runner_by_default,
    split_list,
)
from beam_pipelines.pubsub_input import ParseMessages
from beam_pipelines.transforms import METRICS_NAMESPACE, ClassifyImages, ReadPolicy
from beam_pipelines.windowed_files import WriteWindowedJsonl
from models import runtimes
from models.errors import ImgclfError, InvalidInput, Unavailable, describe, exit_code
from models.locations import check_output
from models.logging_setup import configure_logging
from models.registry import ModelRegistry, ResolvedModel
from models.settings import get_settings

log = logging.getLogger("imgclf.stream")


class StreamOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--input_subscription",
            help="Pub/Sub subscription to read, projects/P/subscriptions/S (or S with --project).",
        )
        parser.add_argument(
            "--input_topic",
            help="Or a topic, projects/P/topics/T (or T with --project): the runner makes its own subscription.",
        )
        parser.add_argument(
            "--id_attribute",
            default="",
            help="Message attribute a publisher sets to the same value on a resend; with it, or else the "
            "message id, a message seen again within --dedup_window_s is dropped.",
        )
        parser.add_argument(
            "--dedup_window_s", type=float, default=600.0, help="How long a message id is remembered (0: off)."
        )
        parser.add_argument(
            "--output_files",
            default=None,
            help="Folder (local or gs://) for windowed JSON-lines files of the predictions.",
        )
        parser.add_argument("--window_s", type=float, default=60.0, help="Window length of --output_files.")
        parser.add_argument(
            "--dead_letter_topic",
            default=None,
            help="Pub/Sub topic for messages that could not be classified or written (payload and reasons).",
        )
        parser.add_argument(
            "--dead_letter_table",
            default=None,
            help="BigQuery table for them; default with --output_table: that table's name + '_dead_letters'.",
        )
        parser.add_argument(
            "--refresh_s",
            type=float,
            default=10.0,
            help="Read the model alias this often and switch to its version when it moves (0: never).",
        )
        parser.add_argument(
            "--min_batch_size",
            type=int,
            default=10,
            help="Fewest images per model call while messages keep coming (up to --batch_size); 10 is "
            "what the local runner's Pub/Sub reader hands over per bundle, so a bundle is one call.",
        )
        parser.add_argument(
            "--max_batch_wait_s",
            type=float,
            default=0,
            help="On Dataflow: let a batch fill across bundles for at most this long (Beam's stateful "
            "batching; e.g. 0.5). 0 (default): batch within each bundle. The local runner withholds "
            "statefully batched elements, so it refuses this.",
        )
        parser.add_argument(
            "--run_for_s",
            type=float,
            default=0,
            help="Stop after this many seconds (0: run until stopped). For demos and tests.",
        )


@dataclass(frozen=True)
class StreamPlan:
    """What a stream fixes before it starts: its input, outputs and the version it starts with."""

    model: ResolvedModel
    subscription: str | None
    topic: str | None
    output_table: str | None
    dead_letter_table: str | None
    dead_letter_topic: str | None
    output_files: str | None
    read_policy: ReadPolicy

    @property
    def has_dead_letter_output(self) -> bool:
        return bool(self.dead_letter_table or self.dead_letter_topic)


def _pubsub_path(value: str | None, kind: str, project: str | None) -> str | None:
    if not value:
        return None
    if value.startswith("projects/"):
        parts = value.split("/")
        if len(parts) != 4 or parts[2] != kind or not all(parts):
            raise InvalidInput(f"{value!r} is not projects/PROJECT/{kind}/NAME")
        return value
    if "/" in value or not project:
        raise InvalidInput(f"{value!r}: write projects/PROJECT/{kind}/{value} or pass --project")
    return f"projects/{project}/{kind}/{value}"


def plan(options: PipelineOptions) -> StreamPlan:
    """Resolves all that can fail before the stream starts: input, outputs, model, datasets."""
    opts = options.view_as(StreamOptions)
    model_opts = options.view_as(ModelOptions)
    project = options.view_as(GoogleCloudOptions).project
    if bool(opts.input_subscription) == bool(opts.input_topic):
        raise InvalidInput("name one input: --input_subscription or --input_topic")
    table = options.view_as(BigQueryOutputOptions).output_table
    if not (table or opts.output_files):
        raise InvalidInput("name an output: --output_table and/or --output_files")
    subscription = _pubsub_path(opts.input_subscription, "subscriptions", project)
    topic = _pubsub_path(opts.input_topic, "topics", project)
    dead_topic = _pubsub_path(opts.dead_letter_topic, "topics", project)
    table = full_table_spec(table, project) if table else None
    dead_table = opts.dead_letter_table or (f"{table}_dead_letters" if table else None)
    dead_table = full_table_spec(dead_table, project) if dead_table else None
    internal = internal_stores(model_opts.model_root, model_opts.protected_locations)
    if opts.output_files:
        check_output(opts.output_files.rstrip("/") + "/predictions.jsonl", inputs=[], internal=internal)
    runner = str(options.view_as(StandardOptions).runner or "")
    if opts.max_batch_wait_s and "Direct" in runner:
        raise InvalidInput(
            f"--max_batch_wait_s does not work on {runner}: it withholds the batched images; leave it at 0 there"
        )
    if model_opts.model_version is not None and opts.refresh_s:
        log.info("--model_version pins version %d: the alias is not followed", model_opts.model_version)
    model = ModelRegistry(model_opts.model_root).resolve(
        model_opts.model, model_opts.alias or get_settings().default_alias, model_opts.model_version
    )
    runtimes.runtime_for(model.card, model_opts.runtime)  # RuntimeUnavailable now, not on the workers
    for spec in {table, dead_table} - {None}:
        ensure_dataset(spec)
    if table:
        ensure_columns(table, PREDICTIONS_SCHEMA)
    return StreamPlan(
        model=model,
        subscription=subscription,
        topic=topic,
        output_table=table,
        dead_letter_table=dead_table,
        dead_letter_topic=dead_topic,
        output_files=opts.output_files,
        read_policy=ReadPolicy(split_list(model_opts.allowed_read_prefixes), tuple(internal.items())),
    )


class _Route(beam.DoFn):
    """Classified records to the outputs; error records to the dead letters when there are any."""

    DEAD = "dead"

    def __init__(self, has_dead_letter_output: bool):
        self.has_dead_letter_output = has_dead_letter_output

    def setup(self):
        self.dead = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, record):
        if record.error and self.has_dead_letter_output:
            self.dead.inc()
            yield beam.pvalue.TaggedOutput(self.DEAD, DeadLetter.from_record(record))
        else:
            yield record


def _log_lost(refused) -> None:
    """The last resort: a dead letter the dead-letter table refused is logged whole, not dropped."""
    table, row, errors = refused
    log.error("dead letter refused by %s (%s): %s", table, errors, row)


def build_pipeline(p: beam.Pipeline, options: PipelineOptions, stream_plan: StreamPlan | None = None):
    """Adds read -> parse -> classify -> write (and dead letters) to ``p``; returns the records."""
    opts = options.view_as(StreamOptions)
    model_opts = options.view_as(ModelOptions)
    limits = options.view_as(ImageLimitOptions)
    stream_plan = stream_plan or plan(options)
    messages = p | "ReadMessages" >> ReadFromPubSub(
        topic=stream_plan.topic, subscription=stream_plan.subscription, with_attributes=True
    )
    follow = None
    if opts.refresh_s and model_opts.model_version is None:
        alias = model_opts.alias or get_settings().default_alias
        follow = FollowAlias(model_opts.model_root, stream_plan.model.name, alias, opts.refresh_s)
    records = (
        messages
        | "ParseMessages" >> ParseMessages(opts.id_attribute, opts.dedup_window_s)
        | "Classify"
        >> ClassifyImages(
            stream_plan.model,
            batch_size=model_opts.batch_size,
            top_k=model_opts.top_k,
            max_image_bytes=limits.max_image_bytes,
            max_image_pixels=limits.max_image_pixels,
            read_policy=stream_plan.read_policy,
            min_batch_size=min(opts.min_batch_size, model_opts.batch_size),
            max_batch_wait_s=opts.max_batch_wait_s,
            follow=follow,
            runtime=model_opts.runtime,
        )
    )
    routed = records | "Route" >> beam.ParDo(_Route(stream_plan.has_dead_letter_output)).with_outputs(
        _Route.DEAD, main="rows"
    )
    dead_letters = [routed[_Route.DEAD]]
    if stream_plan.output_table:
        method = options.view_as(BigQueryOutputOptions).bigquery_method
        refused = routed.rows | "WriteToBigQuery" >> WritePredictionsToBigQuery(
            stream_plan.output_table, method, triggering_frequency_s=60 if method == FILE_LOADS else None
        )
        dead_letters.append(refused | "RefusedToDeadLetters" >> beam.Map(DeadLetter.from_refused_row))
    if stream_plan.output_files:
        _ = routed.rows | "WriteFiles" >> WriteWindowedJsonl(stream_plan.output_files, opts.window_s)
    if stream_plan.has_dead_letter_output:
        letters = dead_letters | "AllDeadLetters" >> beam.Flatten()
        if stream_plan.dead_letter_topic:
            _ = (
                letters
                | "DeadLettersToMessages" >> beam.Map(DeadLetter.to_pubsub_message)
                | "PublishDeadLetters" >> WriteToPubSub(stream_plan.dead_letter_topic, with_attributes=True)
            )
        if stream_plan.dead_letter_table:
            lost = (
                letters
                | "DeadLettersToRows" >> beam.Map(lambda letter: (letter.to_bigquery_row(), letter.insert_id()))
                | "WriteDeadLetters"
                >> WriteRowsToBigQuery(
                    stream_plan.dead_letter_table,
                    DEAD_LETTER_SCHEMA,
                    additional_bq_parameters=DEAD_LETTER_PARTITIONING,
                )
            )
            _ = lost | "LogLostDeadLetters" >> beam.Map(_log_lost)
    return records


_BEAM_EPILOG = """Beam options pass through unchanged, for example:
  --runner RUNNER          BundleBasedDirectRunner (default, local) or DataflowRunner
  --project, --region, --temp_location, --staging_location, --setup_file ./setup.py,
  --enable_streaming_engine, --autoscaling_algorithm THROUGHPUT_BASED, --max_num_workers,
  --machine_type, --sdk_container_image, --dataflow_service_options, --update   (Dataflow)
"""


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beam_pipelines.streaming",
        description="Classify images named by (or carried in) Pub/Sub messages as they arrive.",
        epilog=_BEAM_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for options_class in (StreamOptions, ModelOptions, ImageLimitOptions, BigQueryOutputOptions):
        options_class._add_argparse_args(parser)
    return parser


def stream_options(argv: list[str]) -> PipelineOptions:
    """Flags as pipeline options: streaming mode, on the local streaming runner unless told otherwise."""
    return local_runner_by_default(argv, streaming=True)


def _wait(result, run_for_s: float) -> None:
    """Until the run ends, Ctrl-C, or ``run_for_s`` seconds; then the run is cancelled.

    The local runner's wait takes no timeout and is not woken by a cancel, so it waits in a
    daemon thread, and this thread decides when to stop.
    """
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            result.wait_until_finish()
        except BaseException as e:
            errors.append(e)

    waiter = threading.Thread(target=wait, name="imgclf-stream-wait", daemon=True)
    waiter.start()
    try:
        waiter.join(run_for_s or None)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    if waiter.is_alive():
        result.cancel()
    if errors:
        raise errors[0]


def run(argv: list[str] | None = None) -> int:
    """Runs the stream until it is stopped (Ctrl-C) or ``--run_for_s`` passes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argument_parser().parse_known_args(argv)  # --help, and clear messages for bad flags
    options = stream_options(argv)
    opts = options.view_as(StreamOptions)
    try:
        stream_plan = plan(options)
    except ImgclfError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_code(e)
    outputs = [x for x in (stream_plan.output_table, stream_plan.output_files) if x]
    log.info(
        "streaming %s through %s version %d on %s -> %s; dead letters -> %s",
        stream_plan.subscription or stream_plan.topic,
        stream_plan.model.name,
        stream_plan.model.version,
        runtimes.describe(
            stream_plan.model.card,
            runtimes.runtime_for(stream_plan.model.card, options.view_as(ModelOptions).runtime),
        ),
        " and ".join(outputs),
        " and ".join(x for x in (stream_plan.dead_letter_topic, stream_plan.dead_letter_table) if x) or "the outputs",
    )
    p = beam.Pipeline(options=options)
    build_pipeline(p, options, stream_plan)
    result = p.run()
    started = time.monotonic()
    if "Direct" not in str(options.view_as(StandardOptions).runner):
        # A remote runner (Dataflow) keeps the job; this command only submits it.
        print(f"submitted: {getattr(result, 'job_id', lambda: 'the job')()} (state {result.state})")
        return 0
    try:
        _wait(result, opts.run_for_s)
    except Exception as e:
        log.debug("the stream failed", exc_info=True)
        failure = Unavailable(f"the stream stopped on an error: {describe(e)}")
        print(f"error: {failure}", file=sys.stderr)
        return exit_code(failure)
    print(f"stopped after {time.monotonic() - started:.0f}s")
    return 0


def main() -> None:
    configure_logging()
    sys.exit(run())


if __name__ == "__main__":
    main()
