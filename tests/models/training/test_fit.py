"""`train` with the default recipe: the planner's choice is what trains, and the card says so."""

from models.registry import ModelRegistry
from models.training import budget, train
from tests.helpers import tiny_train_config, write_split_colour_manifest


def test_the_auto_recipe_trains_the_planned_rung_and_records_plan_and_flip_check(tmp_path):
    manifest, _ = write_split_colour_manifest(tmp_path)
    config = tiny_train_config(
        model_name="auto",
        manifest=str(manifest),
        backbone="efficientnet_lite0",
        image_size=64,
        recipe="auto",
        budget="60s",
        epochs=5,
        learning_rate=0.01,
    )
    card = train(config, ModelRegistry(str(tmp_path / "reg"))).card
    plan, flips = card.training["plan"], card.training["flip_check"]
    assert plan["rung"] in {name for name, _ in budget.ladder(budget.Counts(16, 4, 4), 64)} | {
        "top block at 224 px, shortened"
    }
    assert plan["fields"]["image_size"] == 64 == card.image_size  # given, so kept
    assert plan["budget_seconds"] == 60
    for field in ("fine_tune_epochs", "fine_tune_views", "ensemble"):
        assert card.training[field] == plan["fields"][field]
    # A minute buys the frozen head alone (no fine-tuning, no TTA: the check can turn TTA off, never on);
    # colour fields look the same mirrored, so both flips pass the check.
    assert plan["rung"] == "frozen head" and card.training["fine_tune_epochs_run"] == 0
    assert (flips["horizontal"], flips["vertical"], card.training["tta"]) == (True, True, "none")
    assert card.metrics["test"]["accuracy"] == 1.0 and card.training["seconds"] > 0
