"""A running pipeline follows the alias: new versions serve the next batch, broken ones never do."""

from beam_pipelines.model_handler import ImageModelHandler, parse_served_by
from beam_pipelines.model_updates import FollowAlias, alias_target
from models.registry import ModelRegistry
from tests.helpers import colour_image, register_relabelled_version


def _saved_model(root, version: int) -> str:
    return str(root / "colours" / "versions" / str(version) / "saved_model")


def test_the_alias_is_read_at_most_once_per_interval(registry_root):
    follow = FollowAlias(str(registry_root), "colours", "production", interval_s=3600)
    assert alias_target(follow) == _saved_model(registry_root, 1)
    register_relabelled_version(registry_root, "colours", ["azul", "verde", "rojo"], alias="production")
    assert alias_target(follow) is None  # not due: the registry is not read per batch


def test_an_unusable_alias_target_is_skipped(registry_root):
    follow = FollowAlias(str(registry_root), "colours", "production", interval_s=0)
    version = register_relabelled_version(registry_root, "colours", ["a", "b", "c"], alias="production")
    (registry_root / "colours" / "versions" / str(version) / "model.json").write_text("{not a card")
    assert alias_target(follow) is None


def test_the_handler_switches_versions_and_keeps_serving_when_a_new_one_cannot_load(registry_root):
    follow = FollowAlias(str(registry_root), "colours", "production", interval_s=0)
    handler = ImageModelHandler(_saved_model(registry_root, 1), batch_size=4, follow=follow, runtime="tf")
    model = handler.load_model()
    images = [colour_image("red", 0), colour_image("blue", 1)]

    def versions_used():
        served = {parse_served_by(result.model_id) for result in handler.run_inference(images, model)}
        assert {runtime for runtime, _ in served} == {"tf"}
        return {uri for _, uri in served}

    assert versions_used() == {_saved_model(registry_root, 1)}
    v2 = register_relabelled_version(registry_root, "colours", ["azul", "verde", "rojo"], alias="production")
    assert versions_used() == {_saved_model(registry_root, v2)}
    v3 = register_relabelled_version(registry_root, "colours", ["x", "y", "z"], alias="production")
    (registry_root / "colours" / "versions" / str(v3) / "saved_model" / "saved_model.pb").write_bytes(b"corrupt")
    assert versions_used() == {_saved_model(registry_root, v2)}
    ModelRegistry(str(registry_root)).set_alias("colours", "production", 1)  # a rollback is followed too
    assert versions_used() == {_saved_model(registry_root, 1)}


def test_results_name_the_runtime_that_ran_them(registry_root):
    handler = ImageModelHandler(_saved_model(registry_root, 1), batch_size=4, runtime="openvino")
    model = handler.load_model()

    results = list(handler.run_inference([colour_image("red", 0), b"not an image"], model))

    assert {parse_served_by(r.model_id) for r in results} == {("openvino", _saved_model(registry_root, 1))}
    assert results[0].inference.shape == (3,) and results[1].inference.code.value == "decode_error"
