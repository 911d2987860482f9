"""Pipeline options shared by the batch and streaming pipelines, and the local-runner defaults.

Beam parses every imported options class for every pipeline in a process, so a flag two
pipelines share is declared once, here; each pipeline adds only its own.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_pipelines.bigquery_sink import METHODS, STREAMING_INSERTS
from models.settings import get_settings

LOCAL_RUNNER = "FnApiRunner"  # what DirectRunner runs batch jobs on, without its Prism download attempt
LOCAL_STREAMING_RUNNER = "BundleBasedDirectRunner"  # Python streaming's local runner, without Prism either


def local_runner_by_default(argv: list[str], streaming: bool = False) -> PipelineOptions:
    """Pipeline options from flags, on the local runner unless --runner names another."""
    options = PipelineOptions(argv)
    standard = options.view_as(StandardOptions)
    if streaming:
        standard.streaming = True
    if not standard.runner:
        standard.runner = LOCAL_STREAMING_RUNNER if streaming else LOCAL_RUNNER
    return options


def split_list(value: str | None) -> tuple[str, ...]:
    """A comma-separated flag as a tuple, blanks dropped."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


class ImageLimitOptions(PipelineOptions):
    """Byte and pixel limits, for every pipeline that reads images."""

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


class ModelOptions(PipelineOptions):
    """Which model classifies, how images are batched, and where images may be read from."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        s = get_settings()
        parser.add_argument(
            "--model",
            default=s.default_model,
            help="Model name in the registry (default: IMGCLF_DEFAULT_MODEL, or the only model).",
        )
        parser.add_argument("--alias", default=None, help=f"Registry alias to use (default: {s.default_alias}).")
        parser.add_argument("--model_version", type=int, default=None, help="A version number; overrides --alias.")
        parser.add_argument(
            "--model_root", default=s.model_root, help="Registry root, a folder or gs:// prefix (IMGCLF_MODEL_ROOT)."
        )
        parser.add_argument(
            "--top_k", type=int, default=1, help="Multiclass only: how many labels to return per image."
        )
        parser.add_argument(
            "--batch_size", type=int, default=s.batch_size, help="Most images per model call (IMGCLF_BATCH_SIZE)."
        )
        parser.add_argument(
            "--runtime",
            default=s.runtime,
            choices=("tf", "openvino", "auto"),
            help="What runs the model (IMGCLF_RUNTIME): auto takes the version's OpenVINO artifact when it passed "
            "the parity gate and ran faster, TensorFlow otherwise and on GPUs.",
        )
        parser.add_argument(
            "--allowed_read_prefixes",
            default="",
            help="Comma-separated prefixes every image must lie under (others become 'not_allowed' "
            "records); empty: anywhere this process can read. The API sets it for its jobs.",
        )
        parser.add_argument(
            "--protected_locations",
            default="",
            help="Comma-separated extra folders that no output and no image may touch, besides the registry "
            "and imgclf's own stores under IMGCLF_DATA_DIR.",
        )


class BigQueryOutputOptions(PipelineOptions):
    """Where prediction rows go in BigQuery, and how they are written."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--output_table",
            default=None,
            help="BigQuery table for the predictions, PROJECT:DATASET.TABLE or DATASET.TABLE (with --project); "
            "created, partitioned by day on predicted_at, if missing.",
        )
        parser.add_argument(
            "--bigquery_method",
            default=STREAMING_INSERTS,
            choices=METHODS,
            help="STREAMING_INSERTS (default; insert ids from the message ids), STORAGE_WRITE_API "
            "(exactly-once on Dataflow) or FILE_LOADS (needs --temp_location on GCS).",
        )


def internal_stores(model_root: str, protected_locations: str | None) -> dict[str, str]:
    """The registry a run reads, imgclf's own stores, and any protected folder it was given."""
    stores = {**get_settings().internal_stores(), "the model registry": model_root}
    for i, location in enumerate(split_list(protected_locations)):
        stores[f"a protected location ({i + 1})"] = location
    return stores
