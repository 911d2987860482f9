"""The retraining pipeline, TFX-style: components with artifacts, lineage, blessing and a pusher.

Imports models and beam_pipelines; the CLI (and later the labeling dashboard) start it
through ``retraining.pipeline.run_once``.
"""
