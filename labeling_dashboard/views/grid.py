"""The grid: a page of thumbnails, select many (click, shift-click, the header's select-all)
and set, add or remove a label for all of them in one transaction.

Each image is saved on top of the revision shown on the page; images someone else saved
since are left alone and listed with what they hold now.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling_dashboard.store import Change, Item, StoreUnavailable
from labeling_dashboard.views.common import Context, label_text, queue_filter, thumbnail_url
from models.errors import InvalidInput

ACTIONS = {"Set label": "set", "Add label": "add", "Remove label": "remove"}


def new_labels(item: Item, action: str, label: str) -> list[str]:
    """What an image's labels become; it starts from the person's labels, else the model's."""
    start = list(item.labels if item.revision else item.predicted_labels or ())
    if action == "set":
        return [label]
    if action == "add":
        return sorted({*start, label})
    return [x for x in start if x != label]


def render(ctx: Context) -> None:
    f = queue_filter(ctx)
    s = st.session_state
    total = ctx.store.count(f)
    size = ctx.settings.grid_page_size
    pages = max(1, -(-total // size))
    if s.get("grid_page", 1) > pages:  # fewer pages under new filters
        s["grid_page"] = 1
    page = st.number_input(f"Page (of {pages}, {total} images)", 1, pages, 1, key="grid_page")
    view_key = (f, page, s.get("grid_epoch", 0))
    if s.get("grid_view") != view_key:  # a new page: freeze its images and the revisions it shows
        items = ctx.store.queue(f, limit=size, offset=(page - 1) * size)
        s["grid_view"], s["grid_uris"] = view_key, [i.uri for i in items]
        s["grid_seen"] = {i.uri: i.revision for i in items}
    else:  # the same page: same images in the same rows, so a selection means what was seen
        by_uri = {i.uri: i for i in ctx.store.items(s["grid_uris"])}
        items = [by_uri[u] for u in s["grid_uris"] if u in by_uri]
    if not items:
        st.info("No images with these filters.")
        return
    if "grid_message" in s:
        saved, conflicts = s.pop("grid_message")
        st.success(f"Saved {saved} images.")
        if conflicts:
            st.warning(
                f"{len(conflicts)} were saved by someone else after this page loaded and were left as they are: "
                + "; ".join(f"{u.rsplit('/', 1)[-1]} ({who}: {label_text(labels)})" for u, who, labels in conflicts)
            )

    table = pd.DataFrame(
        {
            "image": [thumbnail_url(i.uri) for i in items],
            "file": [i.uri.rsplit("/", 1)[-1] for i in items],
            "model says": [label_text(i.predicted_labels) for i in items],
            "uncertainty": [round(i.uncertainty, 3) for i in items],
            "labelled as": [("unusable" if i.unusable else label_text(i.labels)) if i.revision else "" for i in items],
        }
    )
    event = st.dataframe(
        table,
        key=f"grid_{s.get('grid_epoch', 0)}_{s.get('grid_widget', 0)}",
        on_select="rerun",
        selection_mode="multi-row",
        selection_default={"selection": {"rows": s.pop("grid_select_all", [])}},
        row_height=96,
        hide_index=True,
        column_config={
            "image": st.column_config.ImageColumn("image", width="small"),
            "uncertainty": st.column_config.ProgressColumn("uncertainty", min_value=0.0, max_value=1.0),
        },
        height=min(96 * len(items) + 40, 900),
    )
    rows = list(event.selection.rows) if event else []
    selected = [items[r] for r in rows if r < len(items)]
    pick_all, clear, refresh, _ = st.columns([1, 1, 1, 3])
    if pick_all.button("Select all on page", key="grid_all"):
        s["grid_widget"] = s.get("grid_widget", 0) + 1
        s["grid_select_all"] = list(range(len(items)))
        st.rerun()
    if clear.button("Clear selection", key="grid_clear"):
        s["grid_widget"] = s.get("grid_widget", 0) + 1
        st.rerun()
    if refresh.button("Reload page", key="grid_reload"):
        s["grid_epoch"] = s.get("grid_epoch", 0) + 1
        st.rerun()

    st.markdown(f"**{len(selected)} selected** (click a row, shift-click a range, or tick the header for all)")
    actions = ["Set label"] if not ctx.choices.multilabel else list(ACTIONS)
    action, label, apply = st.columns([2, 3, 2])
    chosen_action = action.selectbox("Action", actions, key="grid_action")
    chosen_label = label.selectbox("Label", ctx.choices.labels, key="grid_label")
    if apply.button(f"Apply to {len(selected)}", key="grid_apply", type="primary", disabled=not selected):
        changes = []
        try:
            for item in selected:
                labels = new_labels(item, ACTIONS[chosen_action], chosen_label)
                changes.append(Change(item.uri, ctx.choices.check(labels), s["grid_seen"][item.uri]))
        except InvalidInput as e:
            st.error(str(e))
            return
        try:
            result = ctx.store.annotate_many(changes, ctx.user.name)
        except StoreUnavailable as e:  # one transaction: nothing was saved, the selection is kept
            st.error(f"Not saved: {e}. Nothing was changed; apply again in a moment.")
            return
        s["grid_epoch"] = s.get("grid_epoch", 0) + 1
        s["grid_message"] = (len(result.saved), [(c.uri, c.annotator, c.labels) for c in result.conflicts])
        st.rerun()
