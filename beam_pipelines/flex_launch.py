"""The Flex Template launcher's entry point in the pipeline image: batch or stream, by parameters.

Both templates share one image, and ``gcloud dataflow flex-template build --image`` takes
no per-template environment, so the image's ``FLEX_TEMPLATE_PYTHON_PY_FILE`` names this
file for both. Their required parameters are disjoint: the stream template reads a
Pub/Sub subscription or topic, the batch template an ``input`` CSV.
"""

from __future__ import annotations

import sys

from models.logging_setup import configure_logging

STREAM_ONLY = ("--input_subscription", "--input_topic")


def pipeline_for(argv: list[str]) -> str:
    flags = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    return "stream" if flags & set(STREAM_ONLY) else "batch"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if pipeline_for(argv) == "stream":
        from beam_pipelines import streaming as pipeline
    else:
        from beam_pipelines import batch as pipeline
    configure_logging()
    sys.exit(pipeline.run(argv))  # argv as given: sys.argv is left alone, as Beam reads it too


if __name__ == "__main__":
    main()
