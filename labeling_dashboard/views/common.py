"""What every view shares: the session's user and store, the queue filters, cached images."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date

import streamlit as st

from labeling_dashboard import images
from labeling_dashboard.auth import User
from labeling_dashboard.label_choices import LabelChoices, label_choices
from labeling_dashboard.settings import DashboardSettings, get_dashboard_settings
from labeling_dashboard.store import LabelStore, QueueFilter

SHOWN_SIDE = 1024
THUMB_SIDE = 160


@dataclass(frozen=True)
class Context:
    settings: DashboardSettings
    store: LabelStore
    user: User
    choices: LabelChoices


@st.cache_resource(show_spinner=False)
def open_store(url: str, wait_s: float) -> LabelStore:
    """One engine per server process; a store that fails to open is not cached, so it is retried."""
    return LabelStore(url, busy_timeout_s=wait_s)


@st.cache_data(show_spinner=False, max_entries=4000)
def shown_image(uri: str, side: int) -> images.Shown:
    return images.load(uri, get_dashboard_settings(), side)


@st.cache_data(ttl=30, show_spinner=False)
def facets(url: str, _store: LabelStore) -> dict[str, list]:
    """The filters' choices: three scans of the store, so fetched at most every 30 s."""
    return _store.facets()


@st.cache_data(ttl=30, show_spinner=False)
def cached_label_choices(model_root: str, model: str | None, added: tuple, seen: tuple) -> LabelChoices:
    """The registry's card (maybe on gs://) read at most every 30 s, or when labels change."""
    return label_choices(model_root, model, list(added), list(seen))


def thumbnail_url(uri: str) -> str | None:
    shown = shown_image(uri, THUMB_SIDE)
    return f"data:image/png;base64,{base64.b64encode(shown.data).decode()}" if shown.data else None


def queue_filter(ctx: Context) -> QueueFilter:
    """The sidebar's filters, shared by the review and grid views."""
    choices = facets(ctx.settings.labels_db, ctx.store)
    side = st.sidebar
    side.subheader("Queue")
    order = side.radio("Order", ["Unlabelled first", "Mixed"], horizontal=True, key="f_order")
    labeled = side.radio("Show", ["All", "Unlabelled", "Labelled"], horizontal=True, key="f_labeled")
    predicted = side.selectbox("Predicted label", ["(any)", *choices["predicted_labels"]], key="f_predicted")
    models = ["(any)", *(f"{name} v{version}" for name, version in choices["models"])]
    model = side.selectbox("Model version", models, key="f_model")
    source = side.selectbox("Source", ["(any)", *choices["sources"]], key="f_source")
    added = side.date_input("Added between", value=(), key="f_added")
    disagreement = side.checkbox("Only where people and model disagree", key="f_disagree")
    name, version = (model.rsplit(" v", 1) + [None])[:2] if model != "(any)" else (None, None)
    start, end = (tuple(added) + (None, None))[:2] if isinstance(added, tuple | list) else (added, None)
    return QueueFilter(
        predicted_label=None if predicted == "(any)" else predicted,
        model_name=name,
        model_version=int(version) if version else None,
        source=None if source == "(any)" else source,
        added_from=start if isinstance(start, date) else None,
        added_to=end if isinstance(end, date) else None,
        labeled={"All": None, "Unlabelled": False, "Labelled": True}[labeled],
        disagreement=disagreement,
        unlabeled_first=order == "Unlabelled first",
    )


def label_text(labels) -> str:
    return ", ".join(labels) if labels else "(none)"
