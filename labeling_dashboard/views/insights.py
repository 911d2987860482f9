"""History of one image, and what the team has labelled and corrected."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling_dashboard.views.common import Context, label_text


def history(ctx: Context) -> None:
    current = st.session_state.get("current") or ""
    uri = st.text_input("Image URI", value=current, key="history_uri")
    if not uri:
        st.info("Open an image in Review, or paste its URI.")
        return
    item = ctx.store.item(uri)
    rows, before = [], None
    for a in ctx.store.history(uri):
        now = "unusable" + (f" ({a.reason})" if a.reason else "") if a.unusable else label_text(a.labels)
        rows.append(
            {
                "revision": a.revision,
                "when": f"{a.created_at:%Y-%m-%d %H:%M:%S}",
                "who": a.annotator,
                "from": before if before is not None else f"model: {label_text(a.predicted_labels)}",
                "to": now,
                "model then": a.model or "",
            }
        )
        before = now
    st.markdown(f"Added {item.added_at:%Y-%m-%d} from *{item.source or 'unknown'}*; split {item.split or '-'}")
    st.markdown(f"Newest prediction: {item.model or '(none)'}: {label_text(item.predicted_labels)}")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.info("No one has labelled this image yet.")


def stats(ctx: Context) -> None:
    s = ctx.store.stats()
    a, b, c = st.columns(3)
    a.metric("Images", s.images)
    b.metric("Labelled", s.labeled, f"{s.labeled / s.images:.0%}" if s.images else None, delta_color="off")
    c.metric("Unusable", s.unusable)
    left, right = st.columns(2)
    with left:
        st.subheader("Labels per class")
        if s.per_label:
            st.bar_chart(pd.Series(s.per_label, name="images").sort_values(ascending=False))
        else:
            st.caption("No labels yet.")
    with right:
        st.subheader("Annotations per annotator per day (30 days)")
        if s.per_annotator_day:
            frame = pd.DataFrame(
                [{"annotator": who, "day": day, "annotations": n} for (who, day), n in s.per_annotator_day.items()]
            )
            st.bar_chart(frame, x="day", y="annotations", color="annotator")
        else:
            st.caption("No annotations in the last 30 days.")
    st.subheader("How often people corrected each model version")
    if s.per_model:
        frame = pd.DataFrame(
            [
                {
                    "model": m,
                    "reviewed": v["annotations"],
                    "corrected": v["corrected"],
                    "correction rate": v["corrected"] / v["annotations"],
                }
                for m, v in sorted(s.per_model.items())
            ]
        )
        st.bar_chart(frame, x="model", y="correction rate")
        st.dataframe(frame, hide_index=True)
        rows = [
            {"model": m, "model said -> person said": change, "times": n}
            for m, counter in s.corrections.items()
            for change, n in counter.most_common(10)
        ]
        if rows:
            st.markdown("Most frequent corrections")
            st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption("No reviewed predictions yet.")
