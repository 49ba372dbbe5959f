"""Audit log: who signed in, labelled, trained, promoted, rolled back, changed a setting or deleted
data — and when, from which role. Admins only."""

from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboard.auth import require_page
from dashboard.deps import show_error, workspace
from services.access.audit import ACTIONS, AuditEvent, events_frame, label_events, read_events
from services.checkins.exports import csv_bytes
from services.errors import PulseError

user = require_page("audit")

LIMIT = 5000

st.title("Audit log")
st.caption(
    "Every sign-in, label, dataset, training run, promotion, rollback, threshold or rule change and "
    "deletion: who, in which role, when. Events name people, versions and groups, never message text."
)

today = datetime.now(UTC).date()
left, middle, right = st.columns([2, 3, 2])
days = left.date_input("Days", value=(today - timedelta(days=30), today), max_value=today)
since, until = (days[0], days[-1]) if isinstance(days, tuple) and days else (today - timedelta(days=30), today)
actions = middle.multiselect("Actions", ACTIONS, placeholder="All actions")
actor = right.text_input("Who", placeholder="Any user name").strip()

try:
    events: list[AuditEvent] = read_events(
        workspace().store, since=since, until=until, actions=actions or None, actor=actor or None, limit=LIMIT
    )
    if not actions or "label" in actions:
        labels = label_events(workspace().store, since=since, until=until)
        events += [e for e in labels if not actor or e.actor == actor]
except PulseError as exc:
    show_error(exc, "check the workspace settings")
    st.stop()

events.sort(key=lambda e: e.at, reverse=True)
shown = events[:LIMIT]
st.metric("Events", f"{len(events):,}")
if not shown:
    st.info("No event matches these filters.")
    st.stop()
if len(events) > LIMIT:
    st.caption(f"Showing the newest {LIMIT:,}; narrow the days or actions to see older ones.")
table = events_frame(shown)
st.dataframe(table, hide_index=True, width="stretch")
st.download_button(
    "Download as CSV",
    csv_bytes(table),
    file_name=f"pulse-audit-{since}-{until}.csv",
    mime="text/csv",
    icon=":material/download:",
)
