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
SCREENFUL = 25  # rows shown whole; a longer table scrolls inside itself

st.title("Audit log")
st.caption(
    "Every sign-in, label, dataset, training run, promotion, rollback, threshold or rule change and "
    "deletion: who, in which role, when. Events name people, versions and groups, never message text."
)

today = datetime.now(UTC).date()
left, middle, right = st.columns([2, 3, 2])
days = left.date_input("Days", value=(today - timedelta(days=30), today), max_value=today, format="YYYY-MM-DD")
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
# Every row in sight up to a screenful; past that the table scrolls inside itself, and says so (a
# count of 11 above ten visible rows read as a row gone missing).
if len(table) > SCREENFUL:
    st.caption(f"Scroll inside the table for all {len(table):,} events, newest first.")
st.dataframe(table, hide_index=True, width="stretch", height="content" if len(table) <= SCREENFUL else 640)
st.download_button(
    "Download as CSV",
    csv_bytes(table),
    file_name=f"pulse-audit-{since}-{until}.csv",
    mime="text/csv",
    icon=":material/download:",
)
