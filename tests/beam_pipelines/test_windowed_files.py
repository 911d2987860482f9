"""Windowed JSON-lines files: each window's records in files named for the run and the window."""

import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_stream

from beam_pipelines.windowed_files import WriteWindowedJsonl
from models.prediction import PredictionRecord


def test_every_record_lands_in_one_jsonl_file_under_a_run_specific_name(tmp_path):
    records = [
        PredictionRecord(image_uri=f"img-{i}.png", labels=["a"], model_name="m", model_version=1) for i in range(5)
    ]
    stream = test_stream.TestStream().add_elements(records[:3]).advance_processing_time(30).add_elements(records[3:])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions(["--runner=BundleBasedDirectRunner", "--streaming"])
    with beam.Pipeline(options=options) as p:
        _ = p | stream | WriteWindowedJsonl(str(tmp_path), window_s=60)
    files = sorted(tmp_path.glob("predictions-*.jsonl"))
    assert files and all(f.name.count("-of-") == 1 for f in files)
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(r["image_uri"] for r in lines) == [f"img-{i}.png" for i in range(5)]
