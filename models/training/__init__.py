"""Training: read a manifest, fit within a time budget, evaluate, export, register.

Modules, in the order a run uses them: ``data`` (examples, images, one model pass),
``budget`` (probe this machine, pick the recipe that fits), ``heads`` and ``loop`` (the
head on frozen features, one Keras fitting loop), ``symmetry`` (do flips keep labels?),
``fine_tune`` (the top blocks, on cached activations), ``layers`` (augmentation, TTA),
``report``, and ``fit`` (the whole run, and ``train`` which registers it).
"""

from models.registry import RegistryError
from models.train_config import TrainConfig
from models.training.data import load_examples, load_images, resolve_label_spec, run_on_images
from models.training.fit import Candidate, TrainResult, fit, train
from models.training.heads import build_head, class_weights
from models.training.layers import augmenter

__all__ = [
    "Candidate",
    "RegistryError",
    "TrainConfig",
    "TrainResult",
    "augmenter",
    "build_head",
    "class_weights",
    "fit",
    "load_examples",
    "load_images",
    "resolve_label_spec",
    "run_on_images",
    "train",
]
