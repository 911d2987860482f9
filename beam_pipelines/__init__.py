"""Beam pipelines: batch classification now; streaming and retraining data steps build on the same transforms."""

import models  # noqa: F401  (first, so TensorFlow starts quietly)
