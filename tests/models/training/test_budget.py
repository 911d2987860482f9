"""The time-budget planner: which recipe a budget buys, given the machine's measured costs."""

import pytest

from models.train_config import TrainConfig, parse_duration
from models.training import budget
from models.training.budget import Costs, Counts, choose

# Seconds per image at 224 px on 2 cores, from the timings of the ELPV runs in docs/benchmarks.md.
TWO_CORES = Costs(size=224, bottom=0.0072, top=0.0044, probe_seconds=5.0)
ELPV = Counts(train=1732, validation=236, test=656)


def _plan(budget_text, side=300, counts=ELPV, **fields):
    config = TrainConfig(model_name="m", budget=budget_text, recipe="auto", **fields)
    return choose(config, counts, side, TWO_CORES, config.budget_seconds or budget.default_budget(counts.train))


def test_durations_read_as_people_write_them():
    assert [parse_duration(t) for t in ("90s", "10m", "1h30m", "45", "1.5m")] == [90, 600, 5400, 45, 90]
    for bad in ("10 minutes", "", "0m", "-5"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError, match="duration"):
        TrainConfig(model_name="m", budget="soon")


def test_every_plan_fits_its_budget_and_more_time_buys_a_better_rung():
    rungs = [name for name, _ in budget.ladder(ELPV, 300)]
    chosen = []
    for minutes in (3, 4, 8, 15, 25, 60):
        plan = _plan(f"{minutes}m")
        assert plan.estimate_seconds <= budget.SAFETY * minutes * 60 - TWO_CORES.probe_seconds
        chosen.append(plan.rung)
    ranks = [rungs.index(r) if r in rungs else 0.5 for r in chosen]  # "shortened" sits between head and fine-tune
    assert ranks == sorted(ranks) and chosen[0] != chosen[-1]
    assert chosen[-1] == "2 tops, blocks 5-15, at 300 px"


def test_a_budget_too_small_for_fine_tuning_trains_the_frozen_head():
    plan = _plan("2m")
    assert plan.rung == "frozen head" and plan.fields["fine_tune_epochs"] == 0
    assert plan.fields["pooling"] == "average"  # frozen ImageNet features were trained with it


def test_fine_tuning_rungs_pool_with_a_generalized_mean():
    assert {fields["pooling"] for _, fields in budget.ladder(ELPV, 300)[1:]} == {"gem"}
    assert _plan("40m").fields["pooling"] == "gem" and _plan("40m", pooling="average").fields["pooling"] == "average"


def test_a_short_budget_shortens_fine_tuning_before_giving_it_up():
    full = _plan("1h").alternatives["top block at 224 px"]
    plan = _plan(f"{int(full * 0.8)}s")
    assert plan.rung.endswith("shortened")
    assert plan.fields["fine_tune_views"] == 4 and 4 <= plan.fields["fine_tune_epochs"] < 16


def test_small_images_are_not_planned_at_a_higher_resolution():
    plan = _plan("1h", side=28)
    assert plan.fields["image_size"] == 224 and all("300" not in name for name in plan.alternatives)


def test_fields_the_user_gave_are_kept_and_flips_are_not_checked_when_tta_is_given():
    plan = _plan("1h", image_size=256, tta="none", fine_tune_from_block=8)
    assert (plan.fields["image_size"], plan.fields["tta"], plan.fields["fine_tune_from_block"]) == (256, "none", 8)
    assert not plan.check_flips and "kept as given" in plan.reasons[-1]


def test_the_default_budget_scales_with_the_data_within_bounds():
    assert budget.default_budget(10) == 180 and budget.default_budget(1732) == 1800
    assert budget.default_budget(600) == 720


def test_fine_tuning_epochs_give_small_data_more_passes():
    assert budget.fine_tune_epochs_for(1732) == 16 and budget.fine_tune_epochs_for(50) == 30
    assert budget.fine_tune_epochs_for(100_000) == 8


def test_the_top_block_alone_trains_for_more_epochs_than_blocks_5_to_15():
    epochs = {name: fields["fine_tune_epochs"] for name, fields in budget.ladder(ELPV, 300)}
    assert epochs["top block at 224 px"] == epochs["top block at 300 px"] == 24
    assert epochs["blocks 5-15 at 300 px"] == 16 and epochs["frozen head"] == 0


def test_estimates_grow_with_image_size_views_and_members():
    base = _plan("1h").fields | {"ensemble": 1, "fine_tune_views": 8, "image_size": 224}
    cost = lambda **k: budget.estimate_seconds(base | k, ELPV, TWO_CORES, True)  # noqa: E731
    assert cost(image_size=300) > cost() and cost(fine_tune_views=12) > cost() and cost(ensemble=2) > cost()


def test_the_probe_times_real_images(colour_data):
    images = [p.read_bytes() for p in sorted(colour_data.rglob("*.png"))[:4]]
    costs = budget.probe(images, size=64, batch=4)
    assert 0 < costs.bottom < costs.forward and costs.top > 0 and costs.size == 64
    assert 0 < costs.frozen_bottom < costs.frozen_forward and costs.frozen_top > 0  # OpenVINO, timed on its own
    with pytest.raises(ValueError, match="at least one image"):
        budget.probe([])


def test_tuning_fewer_blocks_caches_more_of_the_network_and_trains_less_of_it():
    cache5, tuned5, step5 = TWO_CORES.split(5)
    cache15, tuned15, step15 = TWO_CORES.split(15)
    assert cache5 == TWO_CORES.bottom and tuned5 == TWO_CORES.top
    assert cache5 < cache15 < TWO_CORES.forward and 0 < step15 < step5 / 4
    assert cache15 + tuned15 == pytest.approx(TWO_CORES.forward)


def test_a_training_step_costs_more_forward_passes_the_wider_the_blocks_it_tunes():
    ratios = [step / tuned for _, tuned, step in (TWO_CORES.split(b) for b in (15, 12, 9, 5))]
    assert ratios == sorted(ratios) and ratios[0] == pytest.approx(2.5, rel=0.05) and ratios[-1] == 4.1


def test_a_faster_frozen_runtime_makes_caching_cheaper_but_not_training_or_exported_predictions():
    fast = Costs(size=224, bottom=0.0072, top=0.0044, frozen_bottom=0.0024, frozen_top=0.0022)
    assert fast.split(15)[0] < TWO_CORES.split(15)[0] and fast.split(15)[1:] == TWO_CORES.split(15)[1:]
    fields = _plan("1h").fields
    assert budget.estimate_seconds(fields, ELPV, fast, True) < budget.estimate_seconds(fields, ELPV, TWO_CORES, True)


def test_sizes_the_probe_ran_at_are_taken_as_measured_and_others_scaled_from_the_nearest():
    at_300 = Costs(size=300, bottom=0.03, top=0.01)  # the bottom 2.3x the 224 px figure scaled (0.0129)
    table = {224: TWO_CORES, 300: at_300}
    assert budget.costs_at(table, 300) is at_300 and budget.costs_at(table, 224) is TWO_CORES
    assert budget.costs_at(table, 320).bottom == pytest.approx(0.03 * (320 / 300) ** 2)
    assert budget.probe_sizes(1000) == [224, 300] and budget.probe_sizes(28) == [224]
    config = TrainConfig(model_name="m", budget="1h", recipe="auto")
    measured = choose(config, ELPV, 300, table, 3600).alternatives["top block at 300 px"]
    assert measured > choose(config, ELPV, 300, TWO_CORES, 3600).alternatives["top block at 300 px"]
