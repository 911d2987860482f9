"""The label store keeps every decision, refuses stale saves, queues what helps most, and
exports what retraining reads: on SQLite and on a real PostgreSQL server."""

import csv
import io
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from labeling_dashboard.store import (
    AnnotationConflict,
    Change,
    LabelStore,
    NewPrediction,
    QueueFilter,
    StoreUnavailable,
)
from models.errors import InvalidInput, NotFound


@pytest.fixture
def store(store_url):
    s = LabelStore(store_url)
    s.add_images(["a.png", "b.png", "c.png"], source="test")
    return s


def _predict(store, uri, labels, uncertainty, version=1, at=None):
    scores = {"cat": 0.5, "dog": 0.5}
    store.add_predictions([NewPrediction(uri, "m", version, labels, scores, uncertainty, at)])


def test_images_are_added_once(store):
    assert store.add_images(["a.png", "d.png", "d.png"]) == 1
    with pytest.raises(NotFound):
        store.current("nope.png")


def test_opening_a_store_again_keeps_its_data_and_schema(store, store_url):
    store.annotate("a.png", ["cat"], "ann", seen_revision=0)
    again = LabelStore(store_url)  # migrations already at head: nothing to do
    assert again.current("a.png").labels == ("cat",)
    assert {"images", "predictions", "annotations", "label_additions", "alembic_version"} <= set(
        inspect(again.engine).get_table_names()
    )


def test_every_save_is_kept_and_the_newest_is_current(store):
    first = store.annotate("a.png", ["cat"], "ann", seen_revision=0)
    second = store.annotate("a.png", ["dog", "cat"], "bob", seen_revision=first.revision)
    assert store.current("a.png") == second and second.labels == ("cat", "dog")
    assert [(h.revision, h.annotator, h.labels) for h in store.history("a.png")] == [
        (1, "ann", ("cat",)),
        (2, "bob", ("cat", "dog")),
    ]


def test_a_stale_save_is_refused_with_the_other_annotators_labels(store):
    store.annotate("a.png", ["cat"], "ann", seen_revision=0)
    with pytest.raises(AnnotationConflict) as refused:
        store.annotate("a.png", ["dog"], "bob", seen_revision=0)  # bob loaded the image before ann saved
    assert refused.value.current.labels == ("cat",) and "ann" in str(refused.value)
    assert store.current("a.png").labels == ("cat",)  # nothing overwritten
    assert store.item("a.png").revision == 1


def test_two_stores_racing_on_one_image_never_lose_an_update(store_url):
    LabelStore(store_url).add_images(["x.png"])
    outcomes, barrier = [], threading.Barrier(8)

    def save(i):
        store = LabelStore(store_url)  # its own engine, as another process would have
        barrier.wait()
        try:
            outcomes.append(store.annotate("x.png", [f"label{i}"], f"user{i}", seen_revision=0).labels)
        except AnnotationConflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    saved = [o for o in outcomes if o != "refused"]
    assert len(outcomes) == 8 and len(saved) == 1
    assert LabelStore(store_url).current("x.png").labels == saved[0]
    assert len(LabelStore(store_url).history("x.png")) == 1


def test_writers_on_different_images_all_save(store_url):
    uris = [f"{i}.png" for i in range(20)]
    LabelStore(store_url).add_images(uris)

    def save(uri):
        LabelStore(store_url).annotate(uri, ["ok"], "u", seen_revision=0)

    threads = [threading.Thread(target=save, args=(u,)) for u in uris]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(LabelStore(store_url).current(u).labels == ("ok",) for u in uris)


def test_the_queue_puts_unlabelled_images_first_most_uncertain_first(store):
    _predict(store, "a.png", ["cat"], 0.2)
    _predict(store, "b.png", ["dog"], 0.9)
    _predict(store, "c.png", ["cat"], 0.6)
    store.annotate("b.png", ["dog"], "ann", seen_revision=0)
    assert [i.uri for i in store.queue()] == ["c.png", "a.png", "b.png"]
    assert [i.uri for i in store.queue(QueueFilter(unlabeled_first=False))] == ["b.png", "c.png", "a.png"]
    assert [i.uri for i in store.queue(limit=1, offset=1)] == ["a.png"]
    assert store.count(QueueFilter(labeled=False)) == 2


def test_the_queue_filters_by_predicted_label_version_and_disagreement(store):
    _predict(store, "a.png", ["cat"], 0.2)
    _predict(store, "b.png", ["dog"], 0.9, version=2)
    store.annotate("a.png", ["dog"], "ann", seen_revision=0)  # the human disagrees with the model
    store.annotate("b.png", ["dog"], "ann", seen_revision=0)
    assert [i.uri for i in store.queue(QueueFilter(predicted_label="cat"))] == ["a.png"]
    assert [i.uri for i in store.queue(QueueFilter(model_name="m", model_version=2))] == ["b.png"]
    assert [i.uri for i in store.queue(QueueFilter(disagreement=True))] == ["a.png"]
    assert [i.uri for i in store.queue(QueueFilter(labeled=False))] == ["c.png"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    assert store.count(QueueFilter(added_from=tomorrow)) == 0
    assert store.facets()["models"] == [("m", 1), ("m", 2)]


def test_a_newer_prediction_replaces_what_reviewers_see_and_an_older_one_does_not(store):
    now = datetime.now(UTC)
    _predict(store, "a.png", ["cat"], 0.2, version=1, at=now)
    _predict(store, "a.png", ["dog"], 0.7, version=2, at=now + timedelta(seconds=1))
    _predict(store, "a.png", ["cat"], 0.1, version=1, at=now - timedelta(days=1))
    item = store.item("a.png")
    assert (item.model, item.predicted_labels, item.uncertainty) == ("m v2", ("dog",), 0.7)


def test_a_grid_action_saves_every_image_still_as_seen_and_reports_the_others(store):
    store.annotate("b.png", ["cat"], "ann", seen_revision=0)  # saved after the grid was loaded
    result = store.annotate_many(
        [Change("a.png", ["dog"], 0), Change("b.png", ["dog"], 0), Change("c.png", ["dog"], 0)], "bob"
    )
    assert sorted(a.uri for a in result.saved) == ["a.png", "c.png"]
    assert [(c.uri, c.labels, c.annotator) for c in result.conflicts] == [("b.png", ("cat",), "ann")]
    assert store.current("b.png").labels == ("cat",)


def test_stats_count_labels_annotators_and_corrections_per_model_version(store):
    _predict(store, "a.png", ["cat"], 0.5)
    _predict(store, "b.png", ["dog"], 0.5)
    store.annotate("a.png", ["dog"], "ann", seen_revision=0)  # a correction of m v1
    store.annotate("b.png", ["dog"], "bob", seen_revision=0)  # a confirmation
    store.annotate("c.png", [], "bob", seen_revision=0, unusable=True, reason="blank")
    stats = store.stats()
    assert (stats.images, stats.labeled, stats.unusable) == (3, 3, 1)
    assert stats.per_label == {"dog": 2}
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert stats.per_annotator_day == {("ann", today): 1, ("bob", today): 2}
    assert stats.per_model == {"m v1": {"annotations": 2, "corrected": 1}}
    assert dict(stats.corrections["m v1"]) == {"cat -> dog": 1}


def test_an_admin_added_label_is_kept_and_a_malformed_one_refused(store):
    store.add_label("crack", "admin")
    store.add_label("crack", "admin")
    assert store.added_labels() == ["crack"]
    with pytest.raises(InvalidInput, match="cannot be a label"):
        store.add_label("a;b", "admin")


def test_new_annotations_are_counted_since_a_time(store):
    before = datetime.now(UTC)
    store.annotate("a.png", ["cat"], "ann", seen_revision=0)
    assert store.annotations_since(before) == 1
    assert store.annotations_since(datetime.now(UTC) + timedelta(seconds=1)) == 0


def test_export_has_the_newest_human_labels_and_leaves_unusable_images_out(store, tmp_path):
    store.add_prediction("a.png", "m", 1, ["dog"], {"dog": 0.9, "cat": 0.1})  # predictions are not labels
    first = store.annotate("a.png", ["dog"], "ann", seen_revision=0)
    store.annotate("a.png", ["cat"], "bob", seen_revision=first.revision)
    store.annotate("b.png", [], "ann", seen_revision=0, unusable=True, reason="blurred")
    out = tmp_path / "corrections.csv"
    assert store.export_corrections(str(out)) == 1
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["image_uri"], r["labels"]) for r in rows] == [("a.png", "cat")]
    assert rows[0]["corrected_at"].endswith("+00:00")


def test_an_unreachable_database_is_unavailable_not_a_traceback():
    with pytest.raises(StoreUnavailable, match="cannot be opened"):
        LabelStore("postgresql://nobody@127.0.0.1:1/labels")


def test_a_locked_database_is_unavailable(tmp_path):
    store = LabelStore(f"sqlite:///{tmp_path / 'labels.db'}", busy_timeout_s=0.2)
    store.add_images(["a.png"])
    holder = sqlite3.connect(tmp_path / "labels.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.annotate("a.png", ["cat"], "ann", seen_revision=0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.annotate("a.png", ["cat"], "ann", seen_revision=0).revision == 1  # nothing half-saved
