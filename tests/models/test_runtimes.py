"""The OpenVINO runner gives the SavedModel's outputs, pixel for pixel, and fails image by image like it."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models import runtimes
from models.export import export_openvino, export_saved_model
from models.label_spec import LabelSpec, Task
from models.prediction import ErrorCode, ImageError
from models.registry import ModelCard, RuntimeCheck

SIZE = 32


def _pixel_probe() -> keras.Model:
    """A 'classifier' whose outputs are 4x4 averages of the decoded pixels: any pixel that differs shows."""
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.AveragePooling2D(4),
            keras.layers.Flatten(),
        ]
    )


SPEC = LabelSpec(task=Task.MULTILABEL, labels=[f"p{i}" for i in range(8 * 8 * 3)])


def _image(fmt: str, seed: int, mode: str = "RGB") -> bytes:
    """Textured, not square, so decoding and resizing both have work to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:45, 0:37]
    pixels = np.stack([x * 6, y * 5, (x + y) * 3], axis=-1) + rng.normal(0, 30, (45, 37, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtimes")
    model = _pixel_probe()
    export_saved_model(model, SPEC, SIZE, str(root / "saved_model"))
    xml = export_openvino(model, SPEC, SIZE, str(root / "openvino"))
    return runtimes.TensorFlowRunner(str(root / "saved_model")), runtimes.OpenVinoRunner(xml, SIZE)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("JPEG", "RGB"), ("PNG", "RGB"), ("PNG", "L"), ("GIF", "RGB"), ("BMP", "RGB")]
)
def test_openvino_sees_the_pixels_the_saved_model_decodes(exported, fmt, mode):
    tf_runner, ov_runner = exported
    images = [_image(fmt, seed, mode) for seed in range(3)]

    expected, got = tf_runner.predict_images(images), ov_runner.predict_images(images)

    assert ov_runner.runtime == "openvino" and tf_runner.runtime == "tf"
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=0, atol=1e-6)


def test_decoding_jpeg_with_pillow_would_not_pass(exported):
    """The check above can fail: Pillow's accurate DCT gives other pixels than the graph's fast one."""
    tf_runner, _ = exported
    images = [_image("JPEG", seed) for seed in range(3)]
    pillow = np.stack([np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), np.float32) for raw in images])
    resized = tf.image.resize(pillow, [SIZE, SIZE], method="bilinear", antialias=True)

    outputs = _pixel_probe()(resized).numpy()

    assert np.abs(outputs - np.stack(tf_runner.predict_images(images))).max() > 1e-4


def test_a_corrupt_image_fails_alone_with_the_saved_models_error_code(exported):
    tf_runner, ov_runner = exported
    images = [_image("PNG", seed) for seed in range(40)]  # across several decoding chunks
    images[runtimes.CHUNK + 2] = b"not an image"

    expected, got = tf_runner.predict_images(images), ov_runner.predict_images(images)

    failed = got[runtimes.CHUNK + 2]
    assert isinstance(failed, ImageError) and failed.code is ErrorCode.DECODE_ERROR
    assert isinstance(expected[runtimes.CHUNK + 2], ImageError) and expected[runtimes.CHUNK + 2].code is failed.code
    ok = [i for i in range(len(images)) if i != runtimes.CHUNK + 2]
    np.testing.assert_allclose(np.stack([got[i] for i in ok]), np.stack([expected[i] for i in ok]), atol=1e-6)
    assert ov_runner.predict_images([]) == []


def _card(check: RuntimeCheck | None) -> ModelCard:
    return ModelCard(
        name="m",
        version=3,
        label_spec=SPEC,
        image_size=SIZE,
        backbone="x",
        runtimes={"openvino": check} if check else {},
    )


def test_auto_takes_openvino_only_when_it_passed_the_gate_and_ran_faster():
    passed = RuntimeCheck(passed=True, reason="ok", images_per_s=200, tf_images_per_s=100)
    assert runtimes.runtime_for(_card(passed), "auto") == "openvino"
    assert runtimes.runtime_for(_card(passed), "tf") == "tf"
    slower = passed.model_copy(update={"images_per_s": 90})
    assert runtimes.runtime_for(_card(slower), "auto") == "tf"
    assert runtimes.runtime_for(_card(slower), "openvino") == "openvino"  # asked for by name
    refused = RuntimeCheck(passed=False, reason="max |dp| 0.3, 2 of 40 decisions changed")
    assert runtimes.runtime_for(_card(refused), "auto") == "tf"
    assert runtimes.runtime_for(_card(None), "auto") == "tf"


def test_asking_for_openvino_without_a_passed_artifact_says_why():
    refused = RuntimeCheck(passed=False, reason="max |dp| 0.3, 2 of 40 decisions changed")
    with pytest.raises(runtimes.RuntimeUnavailable, match=r"m v3 .* parity gate: max \|dp\| 0.3"):
        runtimes.runtime_for(_card(refused), "openvino")
    with pytest.raises(runtimes.RuntimeUnavailable, match="exported without one"):
        runtimes.runtime_for(_card(None), "openvino")
