"""Frozen forward passes on OpenVINO give TensorFlow's outputs."""

import keras
import numpy as np

from models import efficientnet_lite0, openvino_runtime


def test_a_compiled_network_gives_the_keras_outputs_for_any_batch_size():
    bottom, _ = efficientnet_lite0.build_split(64, 5, weights="imagenet")
    x = np.random.default_rng(0).uniform(0, 255, (openvino_runtime.CHUNK * 2 + 5, 64, 64, 3)).astype(np.float32)
    compiled = openvino_runtime.CompiledNetwork(bottom)

    out = compiled.predict_on_batch(x)

    assert compiled.output_shape == bottom.output_shape
    expected = bottom.predict_on_batch(x)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-3 * np.abs(expected).max())  # f32, not OpenVINO's bf16
    np.testing.assert_array_equal(compiled.predict_on_batch(x[:3]), out[:3])  # the same image, the same answer
    assert compiled.predict_on_batch(x[:0]).shape == (0, *bottom.output_shape[1:])


def test_short_passes_stay_on_tensorflow():
    bottom, _ = efficientnet_lite0.build_split(64, 15, weights=None)
    assert openvino_runtime.frozen(bottom, images=openvino_runtime.MIN_IMAGES - 1) is bottom
    assert isinstance(
        openvino_runtime.frozen(bottom, images=openvino_runtime.MIN_IMAGES), openvino_runtime.CompiledNetwork
    )


def test_converting_sends_no_telemetry(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # where OpenVINO's telemetry keeps its client id and counters
    for ci in ("CI", "TF_BUILD", "JENKINS_URL"):  # under which it would stay quiet anyway
        monkeypatch.delenv(ci, raising=False)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])

    openvino_runtime.convert(model)

    assert not (tmp_path / "intel").exists()


def test_a_gem_pooled_top_converts_with_the_keras_outputs():
    bottom, top = efficientnet_lite0.build_split(64, 12, weights="imagenet", pooling="gem")
    x = bottom.predict_on_batch(np.random.default_rng(1).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32))
    expected = top.predict_on_batch(x)
    np.testing.assert_allclose(
        openvino_runtime.CompiledNetwork(top).predict_on_batch(x), expected, atol=1e-3 * np.abs(expected).max()
    )
