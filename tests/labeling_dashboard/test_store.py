"""The label store keeps every decision, refuses stale saves, and exports what retraining reads."""

import csv
import io
import threading

import pytest

from labeling_dashboard.store import AnnotationConflict, LabelStore
from models.errors import NotFound


@pytest.fixture
def store(tmp_path):
    s = LabelStore(f"sqlite:///{tmp_path / 'labels.db'}")
    s.add_images(["a.png", "b.png", "c.png"], source="test")
    return s


def test_images_are_added_once(store):
    assert store.add_images(["a.png", "d.png", "d.png"]) == 1
    with pytest.raises(NotFound):
        store.current("nope.png")


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


def test_two_stores_racing_on_one_image_never_lose_an_update(tmp_path):
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    LabelStore(url).add_images(["x.png"])
    outcomes, barrier = [], threading.Barrier(8)

    def save(i):
        store = LabelStore(url)  # its own engine, as another process would have
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
    assert LabelStore(url).current("x.png").labels == saved[0]


def test_writers_on_different_images_all_save(tmp_path):
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    uris = [f"{i}.png" for i in range(20)]
    LabelStore(url).add_images(uris)

    def save(uri):
        LabelStore(url).annotate(uri, ["ok"], "u", seen_revision=0)

    threads = [threading.Thread(target=save, args=(u,)) for u in uris]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(LabelStore(url).current(u).labels == ("ok",) for u in uris)


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
