import typing

import pytest
from pydantic import ValidationError

from models.backbones import BACKBONES
from models.train_config import TrainConfig


def test_train_config_names_every_backbone_there_is():
    assert set(typing.get_args(TrainConfig.model_fields["backbone"].annotation)) == set(BACKBONES)


def test_out_of_range_parameters_are_refused_by_name():
    with pytest.raises(ValidationError, match="epochs"):
        TrainConfig(model_name="m", manifest="m.csv", epochs=0)


def test_yaml_holds_any_parameter_and_flags_override_it(tmp_path):
    (tmp_path / "t.yaml").write_text("epochs: 7\nclass_weights: balanced\naugmentation: {zoom: 0.1, flip: none}\n")
    config = TrainConfig.from_yaml(str(tmp_path / "t.yaml"), model_name="m", manifest="m.csv", epochs=9)
    assert (config.epochs, config.class_weights, config.augmentation.zoom, config.augmentation.flip) == (
        9,
        "balanced",
        0.1,
        "none",
    )
