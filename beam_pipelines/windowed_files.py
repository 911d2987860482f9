"""Prediction records as JSON-lines files, one set per fixed window, for users without BigQuery.

Windows are of processing time: a window's file holds the predictions made in it.
Files are named ``<prefix>-<run>-<window start>-<window end>-<pane>-<shard>-of-<n>.jsonl``
in the output folder (local or ``gs://``). The run id keeps a restarted pipeline from
replacing the files an earlier run wrote for the same window; Beam writes each file
under a temporary name and moves it into place when the window closes.
"""

from __future__ import annotations

import time
import uuid

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.transforms import window


class WriteWindowedJsonl(beam.PTransform):
    """PredictionRecords -> ``folder``; returns the names of the files written."""

    def __init__(self, folder: str, window_s: float = 60.0, shards: int = 1, prefix: str = "predictions"):
        super().__init__()
        self.folder, self.window_s, self.shards = folder.rstrip("/"), window_s, shards
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:8]}"

    def expand(self, records):
        return (
            records
            | "ToJson" >> beam.Map(lambda record: record.to_json())
            # Windows of when predictions were made: by publish time, an image whose batch
            # waited past its window's end would arrive late and be dropped.
            | "StampNow" >> beam.Map(lambda line: window.TimestampedValue(line, time.time()))
            | "Window" >> beam.WindowInto(window.FixedWindows(self.window_s))
            | "Write"
            >> fileio.WriteToFiles(
                path=self.folder,
                file_naming=fileio.default_file_naming(self.prefix, ".jsonl"),
                shards=self.shards,
            )
            | "Names" >> beam.Map(lambda result: result.file_name)
        )
