"""The labeling dashboard: ``imgclf dashboard`` runs this file with Streamlit.

Each rerun: who is this (local admin, a configured user, or the proxy's header), open the
store, work out the labels on offer, and draw the chosen view. A store that is locked or
unreachable shows a banner, never a traceback; the session keeps the unsaved choices.
"""

from __future__ import annotations

import streamlit as st

from labeling_dashboard.auth import LOCAL_USER_NAME, User, check_password, from_header, load_users
from labeling_dashboard.settings import DashboardSettings, get_dashboard_settings
from labeling_dashboard.store import StoreUnavailable
from labeling_dashboard.views import admin, grid, insights, review
from labeling_dashboard.views.common import Context, cached_label_choices, facets, open_store

VIEWS = {"Review": review.render, "Grid": grid.render, "History": insights.history, "Stats": insights.stats}
ADMIN_VIEWS = {"Retrain": admin.retrain, "Admin": admin.manage}


def _user(settings: DashboardSettings) -> User | None:
    if settings.trusted_user_header:
        user = from_header(st.context.headers, settings.trusted_user_header, settings.dashboard_admins)
        if user is None:
            st.error(f"No signed-in user: the {settings.trusted_user_header} header is missing.")
        return user
    if settings.dashboard_users:
        if "user" in st.session_state:
            return st.session_state["user"]
        with st.form("login"):
            name = st.text_input("User", key="login_name")
            password = st.text_input("Password", type="password", key="login_password")
            if st.form_submit_button("Sign in"):
                user = check_password(load_users(settings.dashboard_users), name, password)
                if user is None:
                    st.error("Unknown user or wrong password.")
                else:
                    st.session_state["user"] = user
                    st.rerun()
        return None
    return User(LOCAL_USER_NAME, "admin")


def main() -> None:
    st.set_page_config(page_title="imgclf labels", page_icon="🏷️", layout="wide")
    settings = get_dashboard_settings()
    user = _user(settings)
    if user is None:
        st.stop()
    try:
        store = open_store(settings.labels_db, settings.labels_db_wait_s)
        choices = cached_label_choices(
            settings.model_root,
            settings.dashboard_model or settings.default_model,
            tuple(store.added_labels()),
            tuple(facets(settings.labels_db, store)["predicted_labels"]),
        )
        side = st.sidebar
        side.markdown(f"**{user.name}** ({user.role})")
        if user.name == LOCAL_USER_NAME and not (settings.dashboard_users or settings.trusted_user_header):
            side.caption(
                "Local mode: no sign-in; saves are recorded as 'local'. Set IMGCLF_DASHBOARD_USERS or "
                "IMGCLF_TRUSTED_USER_HEADER to require one."
            )
        views = VIEWS | (ADMIN_VIEWS if user.admin else {})
        view = side.radio("View", list(views), key="view")
        side.caption(f"Labels: {choices.task.value}, {len(choices.labels)} ({choices.source})")
        views[view](Context(settings, store, user, choices))
    except StoreUnavailable as e:
        pending = st.session_state.get("pending", {})
        st.error(
            f"The label store is unavailable: {e}. Nothing was lost"
            + (f": your unsaved choices for {len(pending)} images are kept" if pending else "")
            + ". Try again in a moment."
        )


if __name__ == "__main__":
    main()
