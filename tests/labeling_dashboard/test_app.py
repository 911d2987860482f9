"""The dashboard's flows, driven through Streamlit's AppTest on a real label store: label with
number keys' buttons, confirm with Enter's, skip and back, conflicts, unusable images, labels
outside the spec, grid bulk actions, a store that is locked, sign-in and roles, retraining."""

import csv
import sqlite3
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from imgclf.cli import main as imgclf
from labeling_dashboard.auth import add_user
from labeling_dashboard.settings import get_dashboard_settings
from labeling_dashboard.store import LabelStore, NewPrediction
from models.label_spec import LabelSpec
from models.registry import ModelCard, ModelRegistry
from tests.helpers import colour_image, write_split_colour_manifest

APP = str(Path(__file__).parents[2] / "labeling_dashboard" / "app.py")
LABELS = ["ok", "scratch", "dent"]


def write_card(root: Path, name: str, spec: LabelSpec) -> None:
    """A registered version's card: all the dashboard reads of a model."""
    folder = root / name / "versions" / "1"
    folder.mkdir(parents=True)
    card = ModelCard(name=name, version=1, label_spec=spec, image_size=32, backbone="tiny")
    (folder / "model.json").write_text(card.model_dump_json())
    ModelRegistry(str(root)).set_alias(name, "production", 1)


class Dashboard:
    def __init__(self, tmp_path: Path, monkeypatch, spec: LabelSpec):
        self.tmp = tmp_path
        self.db = f"sqlite:///{tmp_path / 'labels.db'}"
        write_card(tmp_path / "registry", "parts", spec)
        for key, value in {
            "IMGCLF_LABELS_DB": self.db,
            "IMGCLF_MODEL_ROOT": str(tmp_path / "registry"),
            "IMGCLF_DATA_DIR": str(tmp_path / "var"),
        }.items():
            monkeypatch.setenv(key, value)
        get_dashboard_settings.cache_clear()
        self.store = LabelStore(self.db)
        (tmp_path / "imgs").mkdir()
        self.uris = []
        # most uncertain first: img0 (0.9) ... img3 (0.3)
        for i, (colour, unsure) in enumerate([("red", 0.9), ("green", 0.7), ("blue", 0.5), ("red", 0.3)]):
            path = tmp_path / "imgs" / f"img{i}.png"
            path.write_bytes(colour_image(colour, i, size=48))
            self.uris.append(str(path))
            scores = {"ok": 0.5, "scratch": 0.3, "dent": 0.2}
            self.store.add_predictions([NewPrediction(str(path), "parts", 1, ["ok"], scores, unsure)])

    def run(self, at: AppTest | None = None) -> AppTest:
        at = at or AppTest.from_file(APP, default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        return at

    def view(self, name: str, **state) -> AppTest:
        at = self.run()
        for key, value in state.items():
            at.session_state[key] = value
        at.radio(key="view").set_value(name)
        return self.run(at)


@pytest.fixture
def dash(tmp_path, monkeypatch):
    yield Dashboard(tmp_path, monkeypatch, LabelSpec(task="multiclass", labels=LABELS))
    get_dashboard_settings.cache_clear()


def shown(at: AppTest) -> str:
    return at.session_state["current"]


def test_the_first_screen_is_the_least_confident_prediction_with_number_key_buttons(dash):
    at = dash.run()
    assert shown(at) == dash.uris[0]
    assert [b.label for b in at.button][:3] == ["1 · ok", "2 · scratch", "3 · dent"]
    assert [b.proto.shortcut for b in at.button][:3] == ["1", "2", "3"]
    assert at.button(key="save").proto.shortcut == "enter"
    assert "Enter save and next" in at.caption[0].value and "4 unlabelled" in at.caption[0].value
    assert len(at.image) == 1  # the image itself
    assert any("Local mode: no sign-in" in c.value for c in at.sidebar.caption)


def test_a_label_button_saves_that_label_as_the_user_and_moves_on(dash):
    at = dash.run()
    at.button(key="label_1").click().run()
    assert dash.store.current(dash.uris[0]).labels == ("scratch",)
    assert dash.store.current(dash.uris[0]).annotator == "local"
    assert shown(at) == dash.uris[1] and "Saved img0.png: scratch" in at.success[0].value


def test_enter_confirms_the_models_labels_and_right_skips_and_left_goes_back(dash):
    at = dash.run()
    at.button(key="save").click().run()  # the model's 'ok' was pre-selected
    assert dash.store.current(dash.uris[0]).labels == ("ok",)
    at.button(key="skip").click().run()
    assert shown(at) == dash.uris[2] and dash.store.current(dash.uris[1]) is None
    at.button(key="back").click().run()
    assert shown(at) == dash.uris[1]


def test_a_save_after_someone_elses_is_refused_with_their_labels_then_can_be_made_on_top(dash):
    at = dash.run()
    dash.store.annotate(dash.uris[0], ["dent"], "bob", seen_revision=0)  # bob saves while we look
    at.button(key="label_1").click().run()
    assert "bob saved this image" in at.warning[0].value and "dent" in at.warning[0].value
    assert dash.store.current(dash.uris[0]).labels == ("dent",)  # nothing overwritten
    at.button(key="conflict_mine").click().run()
    history = dash.store.history(dash.uris[0])
    assert [(a.annotator, a.labels) for a in history] == [("bob", ("dent",)), ("local", ("scratch",))]


def test_an_image_that_cannot_be_loaded_shows_a_placeholder_and_can_be_marked_unusable(dash):
    Path(dash.uris[0]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    at = dash.run()
    assert "cannot be shown" in at.error[0].value and not at.image
    at.button(key="unusable").click().run()
    current = dash.store.current(dash.uris[0])
    assert current.unusable and current.reason == "cannot be shown"
    assert shown(at) == dash.uris[1]


def test_a_label_outside_the_spec_cannot_be_saved_and_the_message_names_it(dash):
    dash.store.add_predictions([NewPrediction(dash.uris[0], "parts", 0, ["rust"], {"rust": 0.5}, 0.99)])
    at = dash.run()
    at.button(key="save").click().run()
    assert "'rust' is not a label of this project" in at.error[0].value
    assert dash.store.current(dash.uris[0]) is None and shown(at) == dash.uris[0]


def test_an_added_label_is_offered_and_saved(dash):
    dash.store.add_label("rust", "admin")
    at = dash.run()
    at.button(key="label_3").click().run()
    assert dash.store.current(dash.uris[0]).labels == ("rust",)


def test_a_locked_store_keeps_the_choice_and_saves_it_when_free(dash, monkeypatch, tmp_path):
    monkeypatch.setenv("IMGCLF_LABELS_DB_WAIT_S", "0.2")
    get_dashboard_settings.cache_clear()
    at = dash.run()
    holder = sqlite3.connect(tmp_path / "labels.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        at.button(key="label_2").click().run()
        assert "Not saved" in at.error[0].value and "locked" in at.error[0].value
        assert at.session_state["pending"][dash.uris[0]] == ["dent"] and shown(at) == dash.uris[0]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    at.button(key="save").click().run()
    assert dash.store.current(dash.uris[0]).labels == ("dent",)


def test_an_unreachable_store_is_a_banner_not_a_traceback(dash, monkeypatch):
    monkeypatch.setenv("IMGCLF_LABELS_DB", "postgresql://nobody@127.0.0.1:1/labels")
    get_dashboard_settings.cache_clear()
    at = dash.run()
    assert "The label store is unavailable" in at.error[0].value


def test_a_grid_action_labels_every_selected_image_and_reports_a_conflict(dash):
    at = dash.view("Grid")
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 4
    dash.store.annotate(dash.uris[1], ["ok"], "bob", seen_revision=0)  # after the page loaded
    at.session_state["grid_0_0"] = {  # click, shift-click: what the browser sends
        "selection": {"rows": [0, 1, 2], "columns": [], "cells": []}
    }
    at.run()
    at.selectbox(key="grid_label").set_value("dent")
    at.button(key="grid_apply").click().run()
    assert "Saved 2 images" in at.success[0].value and "bob" in at.warning[0].value
    assert [dash.store.item(u).labels for u in dash.uris] == [("dent",), ("ok",), ("dent",), None]


def test_multilabel_gets_checkbox_toggles_with_number_keys_and_grid_add_remove(tmp_path, monkeypatch):
    dash = Dashboard(tmp_path, monkeypatch, LabelSpec(task="multilabel", labels=LABELS))
    try:
        at = dash.run()
        assert [b.label for b in at.button][:3] == ["☑ 1 · ok", "☐ 2 · scratch", "☐ 3 · dent"]  # 'ok' predicted
        at.button(key="toggle_1").click().run()
        at.button(key="toggle_2").click().run()
        assert at.session_state["pending"][dash.uris[0]] == ["ok", "scratch", "dent"]
        at.button(key="toggle_0").click().run()
        at.button(key="save").click().run()
        assert dash.store.current(dash.uris[0]).labels == ("dent", "scratch")

        grid = dash.view("Grid")
        grid.session_state["grid_0_0"] = {"selection": {"rows": [0, 1, 2, 3], "columns": [], "cells": []}}
        grid.run()
        grid.selectbox(key="grid_action").set_value("Remove label")
        grid.selectbox(key="grid_label").set_value("scratch")
        grid.button(key="grid_apply").click().run()
        labels = {Path(u).name: dash.store.item(u).labels for u in dash.uris}
        assert labels["img0.png"] == ("dent",) and labels["img1.png"] == ("ok",)
    finally:
        get_dashboard_settings.cache_clear()


def test_history_shows_who_changed_what_and_stats_count_corrections(dash):
    first = dash.store.annotate(dash.uris[0], ["scratch"], "ann", seen_revision=0)
    dash.store.annotate(dash.uris[0], ["dent"], "bob", seen_revision=first.revision)
    at = dash.view("History")
    at.text_input(key="history_uri").input(dash.uris[0]).run()
    table = at.dataframe[0].value
    assert list(table["who"]) == ["ann", "bob"] and list(table["to"]) == ["scratch", "dent"]
    assert list(table["from"]) == ["model: ok", "scratch"]
    stats = dash.view("Stats")
    assert [m.value for m in stats.metric] == ["4", "1", "0"]
    corrections = stats.dataframe[-1].value
    assert list(corrections["model said -> person said"]) == ["ok -> scratch", "ok -> dent"]


def test_a_correction_made_in_the_dashboard_is_in_the_export(dash, tmp_path):
    at = dash.run()
    at.button(key="label_2").click().run()
    out = tmp_path / "corrections.csv"
    assert imgclf(["labels", "export", "--output", str(out), "--db", dash.db]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["image_uri"], r["labels"]) for r in rows] == [(dash.uris[0], "dent")]


def test_sign_in_is_required_when_users_are_configured_and_annotators_see_no_admin_pages(dash, monkeypatch):
    users = dash.tmp / "users.yaml"
    add_user(str(users), "ann", "correct horse", "annotator")
    assert "correct horse" not in users.read_text()  # stored as a bcrypt hash
    monkeypatch.setenv("IMGCLF_DASHBOARD_USERS", str(users))
    get_dashboard_settings.cache_clear()
    at = dash.run()
    assert at.text_input(key="login_name") and "save" not in [b.key for b in at.button]  # nothing before sign-in
    at.text_input(key="login_name").input("ann")
    at.text_input(key="login_password").input("wrong password")
    at.button[0].click().run()
    assert "wrong password" in at.error[0].value
    at.text_input(key="login_password").input("correct horse")
    at.button[0].click().run()
    assert at.radio(key="view").options == ["Review", "Grid", "History", "Stats"]
    at.button(key="label_0").click().run()
    assert dash.store.current(dash.uris[0]).annotator == "ann"


def test_retrain_starts_a_run_on_the_current_labels_and_shows_its_result(dash, tmp_path, monkeypatch):

    _, rows = write_split_colour_manifest(tmp_path / "d")
    config = tmp_path / "retrain.yaml"
    config.write_text(
        f"model_name: rb\nmanifest: {tmp_path / 'd/m.csv'}\nmodel_root: {tmp_path / 'models'}\n"
        f"work_dir: {tmp_path / 'work'}\n"
        "trainer: {backbone: small_cnn, image_size: 32, epochs: 3, labels: [red, blue]}\n"
        "validation: {min_examples_per_label: 2}\nevaluation: {floor: 0.0}\n"
    )
    monkeypatch.setenv("IMGCLF_RETRAIN_CONFIG", str(config))
    get_dashboard_settings.cache_clear()
    red = str(tmp_path / "d" / rows[0][0])
    dash.store.add_images([red])
    dash.store.annotate(red, ["blue"], "ann", seen_revision=0)  # a correction the run must use

    at = dash.view("Retrain")
    at.button(key="retrain_start").click().run()
    assert "Started" in at.success[0].value
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        at.button(key="retrain_refresh").click().run()
        runs = at.dataframe[0].value if at.dataframe else None
        if runs is not None and runs["status"][0] in ("succeeded", "failed"):
            break
        time.sleep(2)
    assert runs is not None and runs["status"][0] == "succeeded", at.code[0].value if at.code else ""
    assert runs["pushed version"][0] == "1"
    used = (tmp_path / "work" / "runs" / "1" / "corrections.csv").read_text()
    assert f"{red},blue," in used


@pytest.mark.parametrize(("task", "n", "widget"), [("multiclass", 12, "radio"), ("multilabel", 40, "multiselect")])
def test_many_labels_get_a_radio_or_a_type_ahead_multiselect(tmp_path, monkeypatch, task, n, widget):
    labels = ["ok", "scratch", "dent"] + [f"defect{i:02d}" for i in range(n - 3)]
    dash = Dashboard(tmp_path, monkeypatch, LabelSpec(task=task, labels=labels))
    try:
        at = dash.run()
        key = f"{widget}_{dash.uris[0]}".replace("multiselect", "multi")
        if widget == "radio":
            at.radio(key=key).set_value("defect05").run()
        else:
            at.multiselect(key=key).select("defect33").select("dent").run()
        at.button(key="save").click().run()
        saved = dash.store.current(dash.uris[0]).labels
        assert saved == (("defect05",) if widget == "radio" else ("defect33", "dent", "ok"))
    finally:
        get_dashboard_settings.cache_clear()
