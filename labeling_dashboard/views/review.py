"""The label view: one image at a time from the review queue, with keyboard shortcuts.

The revision an annotator saw is kept when the image is first shown and is what a save
builds on, so a save after someone else's is refused with their labels (never silently
replacing them). The pending choice lives in the session, so it survives a database that
is briefly unavailable.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling_dashboard.store import AnnotationConflict, Item, QueueFilter, StoreUnavailable
from labeling_dashboard.views.common import SHOWN_SIDE, Context, label_text, queue_filter, shown_image
from models.errors import InvalidInput

SHORTCUTS = "1-9 choose a label · Enter save and next · → skip · ← back · U mark unusable"


def _state() -> dict:
    s = st.session_state
    s.setdefault("current", None)  # the image on screen
    s.setdefault("trail", [])  # images shown before it, for Back
    s.setdefault("done", [])  # saved or skipped in this session
    s.setdefault("seen", {})  # uri -> the revision the annotator saw
    s.setdefault("pending", {})  # uri -> labels chosen, not yet saved
    return s


def _next_uri(ctx: Context, f: QueueFilter) -> str | None:
    done = set(_state()["done"])
    for item in ctx.store.queue(f, limit=len(done) + 25):
        if item.uri not in done:
            return item.uri
    return None


def _advance(ctx: Context, f: QueueFilter) -> None:
    s = _state()
    if s["current"]:
        s["seen"].pop(s["current"], None)  # reopened later: build on what is there then
        s["trail"].append(s["current"])
        s["done"].append(s["current"])
    s["current"] = _next_uri(ctx, f)
    s.pop("conflict", None)


def _save(
    ctx: Context, item: Item, labels: list[str], f: QueueFilter, unusable: bool = False, reason: str = ""
) -> None:
    s = _state()
    try:
        if not unusable:
            ctx.choices.check(labels)
        ctx.store.annotate(item.uri, labels, ctx.user.name, s["seen"][item.uri], unusable=unusable, reason=reason)
    except InvalidInput as e:
        s["message"] = ("error", str(e))
        return
    except AnnotationConflict as e:
        s["conflict"] = e.current
        return
    except StoreUnavailable as e:  # the choice stays pending; saving again works once the store is back
        s["message"] = ("error", f"Not saved: {e}. Your choice is kept; press Save again in a moment.")
        return
    s["pending"].pop(item.uri, None)
    s["message"] = ("success", f"Saved {item.uri.rsplit('/', 1)[-1]}: {'unusable' if unusable else label_text(labels)}")
    _advance(ctx, f)


def _controls(ctx: Context, item: Item, pending: list[str], f: QueueFilter) -> None:
    choices, s = ctx.choices, _state()
    control = choices.control
    if control == "buttons":  # a click (or its number key) saves that label and moves on
        columns = st.columns(min(len(choices.labels), 5))
        for i, label in enumerate(choices.labels):
            chosen = label in pending
            if columns[i % len(columns)].button(
                f"{i + 1} · {label}", key=f"label_{i}", shortcut=str(i + 1), type="primary" if chosen else "secondary"
            ):
                s["pending"][item.uri] = [label]
                _save(ctx, item, [label], f)
                st.rerun()
    elif control == "toggles":  # checkboxes with number keys; Enter saves the set
        columns = st.columns(min(len(choices.labels), 5))
        for i, label in enumerate(choices.labels):
            on = label in pending
            if columns[i % len(columns)].button(
                f"{'☑' if on else '☐'} {i + 1} · {label}", key=f"toggle_{i}", shortcut=str(i + 1)
            ):
                s["pending"][item.uri] = [x for x in pending if x != label] if on else [*pending, label]
                st.rerun()
    elif control == "radio":
        index = choices.labels.index(pending[0]) if pending and pending[0] in choices.labels else None
        picked = st.radio("Label", choices.labels, index=index, key=f"radio_{item.uri}", horizontal=True)
        s["pending"][item.uri] = [picked] if picked else []
    else:  # hundreds or thousands of labels: type to search
        picked = st.multiselect(
            "Labels (type to search)",
            choices.labels,
            default=[x for x in pending if x in choices.labels],
            max_selections=None if choices.multilabel else 1,
            key=f"multi_{item.uri}",
        )
        s["pending"][item.uri] = list(picked)


def _conflict(ctx: Context, item: Item, f: QueueFilter) -> None:
    s, theirs = _state(), _state()["conflict"]
    st.warning(
        f"{theirs.annotator} saved this image at {theirs.created_at:%H:%M:%S} as "
        f"**{'unusable' if theirs.unusable else label_text(theirs.labels)}** after you opened it. "
        "Nothing was overwritten."
    )
    keep, mine = st.columns(2)
    if keep.button("Keep theirs and go on", key="conflict_keep"):
        s["pending"].pop(item.uri, None)
        _advance(ctx, f)
        st.rerun()
    if mine.button(f"Save mine ({label_text(s['pending'].get(item.uri, []))}) over theirs", key="conflict_mine"):
        s["seen"][item.uri] = theirs.revision
        s.pop("conflict")
        _save(ctx, item, s["pending"].get(item.uri, []), f)
        st.rerun()


def render(ctx: Context) -> None:
    f = queue_filter(ctx)
    s = _state()
    if s.get("filter") != f:  # new filters: start again at the top of the new queue
        s["filter"], s["current"], s["done"], s["trail"] = f, None, [], []
    if s["current"] is None:
        s["current"] = _next_uri(ctx, f)
    if s["current"] is None:
        st.success("Nothing left to review with these filters.")
        return
    item = ctx.store.item(s["current"])
    s["seen"].setdefault(item.uri, item.revision)
    if item.uri not in s["pending"]:  # start from the person's labels, else the model's
        start = item.labels if item.revision else item.predicted_labels
        s["pending"][item.uri] = [x for x in (start or ()) if not item.unusable]
    pending = s["pending"][item.uri]

    kind, text = s.pop("message", (None, None))
    if kind:
        getattr(st, kind)(text)
    remaining = ctx.store.count(QueueFilter(**{**f.__dict__, "labeled": False}))
    st.caption(f"{remaining} unlabelled in this queue · {len(s['done'])} done this session · {SHORTCUTS}")

    left, right = st.columns([3, 2])
    with left:
        zoom = st.segmented_control("Zoom", ["fit", "1.5x", "2x", "3x"], default="fit", key="zoom") or "fit"
        shown = shown_image(item.uri, SHOWN_SIDE)
        if shown.data:
            width = "stretch" if zoom == "fit" else int(SHOWN_SIDE * float(zoom[:-1]) / 2)
            st.image(shown.data, caption=item.uri, width=width)
        else:
            st.error(f"This image cannot be shown: {shown.error}")
            st.caption(item.uri)
    with right:
        st.markdown(f"**Model** {item.model or '(no prediction)'}: {label_text(item.predicted_labels)}")
        if item.scores:
            scores = pd.DataFrame({"label": list(item.scores), "score": list(item.scores.values())})
            st.dataframe(
                scores.sort_values("score", ascending=False), hide_index=True, height=min(36 * 7, 38 + 35 * len(scores))
            )
        if item.revision:
            now = "unusable: " + item.reason if item.unusable else label_text(item.labels)
            st.markdown(f"**Labelled** by {item.annotator} (revision {item.revision}): {now}")
        else:
            st.markdown("**Not labelled yet**: the model's labels are pre-selected; confirm or correct them.")
        if "conflict" in s:
            _conflict(ctx, item, f)
        _controls(ctx, item, pending, f)
        st.markdown(f"Your choice: **{label_text(pending)}**")
        save, skip, back = st.columns([5, 3, 3])
        if save.button("Save and next", key="save", shortcut="enter", type="primary"):
            _save(ctx, item, pending, f)
            st.rerun()
        if skip.button("Skip →", key="skip", shortcut="right"):
            _advance(ctx, f)
            st.rerun()
        if back.button("← Back", key="back", shortcut="left", disabled=not s["trail"]):
            s["current"] = s["trail"].pop()
            if s["current"] in s["done"]:
                s["done"].remove(s["current"])
            s["seen"].pop(s["current"], None)  # reopened: build on what is there now
            st.rerun()
        reason = st.text_input("Why unusable", key=f"reason_{item.uri}", placeholder="blurred, not a cell, ...")
        if st.button("Mark unusable (U)", key="unusable", shortcut="u"):
            _save(ctx, item, [], f, unusable=True, reason=reason or ("cannot be shown" if not shown.data else ""))
            st.rerun()
