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
