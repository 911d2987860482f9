"""The model core: label spec, preprocessing, backbones, training, evaluation, registry.

Imports nothing else of this project, so every other part can depend on it.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probes on a CPU machine) drowns our own progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
