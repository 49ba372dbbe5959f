"""Home: the workspace at a glance (role-neutral; counts scoped to what the user may see)."""

import plotly.express as px
import streamlit as st

from dashboard.auth import require_page
from dashboard.components import escape_markdown, when
from dashboard.deps import settings, show_error
from dashboard.queries import overview
from services.errors import PulseError
from services.workspace import SINGLE_WRITER_RISK

user = require_page("home")

st.title("Pulse")
try:
    view = overview(user)
except PulseError as exc:
    show_error(exc, "check the workspace settings, or run `make run` to build the demo workspace")
    st.stop()

scope = "your groups" if user.role == "manager" else "all groups"
cols = st.columns(4)
cols[0].metric("Check-ins", f"{view.checkins:,}", help=f"Scored check-ins in {scope}")
cols[1].metric("Participants", f"{view.participants:,}")
cols[2].metric("Groups", f"{view.groups:,}")
cols[3].metric("Review queue", f"{view.queue:,}", help="Check-ins the model was unsure about, waiting for a human")

if settings().store_kind == "s3" and settings().store_single_writer:
    st.warning(escape_markdown(SINGLE_WRITER_RISK))

if view.deployment:
    dep = view.deployment
    st.markdown(f"**Live model** {escape_markdown(dep.version)}")
    st.caption(
        f"Deployed {when(dep.deployed_at)} by {escape_markdown(dep.deployed_by)}. Reason: {escape_markdown(dep.reason)}"
    )
else:
    st.warning("No model is deployed yet: an admin can run `python -m services.cli bootstrap`.")

if view.checkins == 0:
    st.info(
        "No check-ins yet. An admin can upload a CSV, JSON lines or Parquet file on the Upload page, "
        "or run `python -m services.cli ingest FILE`."
    )
else:
    st.subheader(f"Check-ins per day ({escape_markdown(view.first_day)} to {escape_markdown(view.last_day)})")
    fig = px.bar(
        view.daily,
        x="date",
        y="count",
        color="label",
        category_orders={"label": ["negative", "neutral", "positive"]},
        color_discrete_map={"negative": "#e8590c", "neutral": "#adb5bd", "positive": "#2b8a3e"},
        labels={"date": "", "count": "check-ins", "label": "model's label"},
    )
    fig.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"title": "", "orientation": "h", "y": 1.12, "x": 0},
    )
    st.plotly_chart(fig, width="stretch")
