"""The InfraValidator's fresh process: a model that does not load there is refused, and an unused one ends."""

import keras

from models.backbones import small_cnn
from models.export import export_saved_model
from models.label_spec import LabelSpec
from retraining.infra_validator import InfraValidator
from tests.helpers import colour_image


def test_a_model_that_does_not_load_in_a_fresh_process_is_refused_and_an_unused_process_ends(tmp_path):
    image = tmp_path / "warmup.png"
    image.write_bytes(colour_image("red", 1))
    model = keras.Sequential([small_cnn(32), keras.layers.Dense(2, activation="softmax")])
    export_saved_model(model, LabelSpec(task="multiclass", labels=["red", "blue"]), 32, str(tmp_path / "m"))
    (tmp_path / "m" / "saved_model.pb").write_bytes(b"not a graph")

    with InfraValidator() as validator:
        result = validator.validate(str(tmp_path / "m"), str(image), 2)
    assert not result.ok and result.detail.startswith("exit 1: OSError: Cannot parse file"), result

    with InfraValidator() as unused:
        unused.start()
        process = unused._process
    assert process.returncode is not None  # ended with the block, not left running
