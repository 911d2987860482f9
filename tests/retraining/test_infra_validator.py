"""The InfraValidator's fresh process: a model that does not load there is refused, and an unused one ends."""

from retraining.infra_validator import InfraValidator
from tests.helpers import colour_image


def test_a_model_that_does_not_load_in_a_fresh_process_is_refused_and_an_unused_process_ends(tmp_path):
    image = tmp_path / "warmup.png"
    image.write_bytes(colour_image("red", 1))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "saved_model.pb").write_bytes(b"not a graph")

    with InfraValidator() as validator:
        result = validator.validate(str(tmp_path / "m"), str(image), 2)
    assert not result.ok and result.detail.startswith("exit 1: OSError: Cannot parse file"), result

    with InfraValidator() as unused:
        unused.start()
        process = unused._process
    assert process.returncode is not None  # ended with the block, not left running
