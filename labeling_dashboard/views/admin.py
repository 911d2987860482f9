"""Admin pages: start retraining on the current labels and follow it; import; add labels."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling_dashboard.auth import load_users
from labeling_dashboard.imports import import_paths
from labeling_dashboard.views.common import Context
from models.errors import ImgclfError
from models.locations import check_allowed


def retrain(ctx: Context) -> None:
    from labeling_dashboard import retrain_runs  # imports the trainer (TensorFlow): only on this page

    settings = ctx.settings
    try:
        config = retrain_runs.load_config(settings.retrain_config, settings.labels_db)
    except ImgclfError as e:
        st.warning(str(e))
        return
    st.markdown(
        f"Model **{config.model_name}** from `{config.manifest}` plus the current labels in this store "
        f"({ctx.store.stats().labeled} labelled images); config `{settings.retrain_config}`."
    )
    if st.button("Start retraining", key="retrain_start", type="primary"):
        launch = retrain_runs.start(settings.retrain_config, settings.labels_db, config.work_dir)
        st.session_state["retrain_launch"] = launch
        st.success(f"Started (process {launch.pid}); it appears below once it has taken the model's lock.")
    if st.button("Refresh status", key="retrain_refresh"):
        st.rerun()
    runs = retrain_runs.recent_runs(config)
    if runs:
        st.dataframe(pd.DataFrame(runs).astype(str), hide_index=True)
    else:
        st.caption("No runs yet.")
    launch = st.session_state.get("retrain_launch")
    if launch:
        st.caption(f"Output of the run started here ({launch.log}):")
        st.code(retrain_runs.log_tail(launch.log) or "(nothing yet)")


def _allowed(path: str, prefixes: list[str], internal: dict[str, str]) -> str:
    if path.startswith("bq://"):
        if not any(path.startswith(p) for p in prefixes):
            raise ImgclfError(f"{path} is outside the allowed locations {prefixes}")
        return path
    return check_allowed(path, prefixes, "import path", internal)


def manage(ctx: Context) -> None:
    st.subheader("Import")
    st.caption(
        "Image folders or gs:// prefixes, manifests, batch or stream prediction outputs (.csv, .jsonl), "
        f"bq://project.dataset.table; under {ctx.settings.allowed_read_prefixes}."
    )
    with st.form("import"):
        paths = st.text_area("Paths, one per line", key="import_paths")
        relative_to = st.text_input("Relative image URIs are relative to (default: each file's folder)")
        strict = st.checkbox("Import nothing if any row is bad", key="import_strict")
        submitted = st.form_submit_button("Import")
    if submitted:
        try:
            wanted = [p.strip() for p in paths.splitlines() if p.strip()]
            internal = ctx.settings.internal_stores()
            checked = [_allowed(p, ctx.settings.allowed_read_prefixes, internal) for p in wanted]
            report = import_paths(
                ctx.store,
                checked,
                relative_to=relative_to or None,
                all_or_nothing=strict,
                model_root=ctx.settings.model_root,
                annotator=ctx.user.name,
            )
        except ImgclfError as e:
            st.error(str(e))
        else:
            st.success(
                f"{report.images} new images, {report.predictions} predictions, {report.annotations} labels; "
                f"{len(report.bad_rows)} bad rows skipped"
            )
            for line in report.bad_rows[:50]:
                st.text(line)

    st.subheader("Labels")
    st.caption(f"Offered to annotators: {', '.join(ctx.choices.labels)} ({ctx.choices.source})")
    with st.form("add_label"):
        new = st.text_input("New label", key="new_label")
        if st.form_submit_button("Add label"):
            try:
                ctx.store.add_label(new, ctx.user.name)
                st.success(f"Added {new!r}; retraining's validation accepts it as a new label.")
            except ImgclfError as e:
                st.error(str(e))

    st.subheader("Users")
    users = load_users(ctx.settings.dashboard_users)
    if users:
        st.dataframe(pd.DataFrame([{"user": n, "role": u.get("role")} for n, u in users.items()]), hide_index=True)
    st.caption("Add or change users with `imgclf dashboard-user add NAME --role annotator|admin`.")
