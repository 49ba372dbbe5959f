"""Trends: how the manager's groups feel over time, who may need attention, and one person's check-ins."""

import pandas as pd
import streamlit as st

from dashboard import urlstate
from dashboard.auth import require_page
from dashboard.charts import clicked_participant, heatmap_figure, trend_figure
from dashboard.components import escape_markdown
from dashboard.deps import settings, show_error, workspace
from services.checkins import trends
from services.checkins.exports import csv_bytes
from services.errors import PulseError
from services.lifecycle.explain import why

user = require_page("trends")

st.title("Trends")
store = workspace().store
try:
    groups = trends.visible_groups(store, user)
except PulseError as exc:
    show_error(exc, "check the workspace settings; an admin can re-upload or remove a damaged file")
    st.stop()

if not groups:
    if user.role == "manager" and not user.groups:
        st.info("No groups are assigned to you yet: ask an admin to add your groups to your user.")
    else:
        st.info(
            "No check-ins yet. An admin uploads check-ins on the Upload page (or runs "
            "`python -m services.cli ingest FILE`); they show here as soon as they are scored."
        )
    st.stop()

# --- filters (kept in the address: a reload or a bookmark opens the same view) ------------------
# Groups as pills on a row of their own: every group stays in sight and a click turns it on or off (a
# multiselect folded all but two of six groups out of view at 1400 px).
urlstate.seed("trend_groups", "group", groups, groups, many=True)
chosen = st.pills("Groups", groups, key="trend_groups", selection_mode="multi", format_func=escape_markdown) or []
top = st.columns([3, 2.4, 1.4], vertical_alignment="bottom")
if not chosen:
    st.info("Pick at least one group to see its trends.")
    st.stop()
everyone = trends.participants(store, user, chosen)
urlstate.seed("trend_people", "person", everyone, [], many=True)
people = top[0].multiselect(
    "Participants (optional)", everyone, key="trend_people", placeholder="Everyone in these groups"
)
known = trends.date_range(store, user, chosen)
if known is None:
    st.info("These groups have no check-ins yet: pick other groups, or ask an admin to upload check-ins.")
    st.stop()
first, last = known
usual = urlstate.seed_dates("trend_dates", first, last, default_days=90)
dates = top[1].date_input("Dates", min_value=first, max_value=last, key="trend_dates", format="YYYY-MM-DD")
urlstate.seed("trend_grain", "per", ["day", "week"], "day")
grain = top[2].radio(
    "Per", ["day", "week"], key="trend_grain", horizontal=True, format_func=lambda g: "Day" if g == "day" else "Week"
)
if not isinstance(dates, tuple) or len(dates) != 2:
    st.info("Pick the last day of the range as well.")
    st.stop()
start, end = dates
urlstate.publish(
    {
        "group": None if set(chosen) == set(groups) else chosen,
        "person": people or None,
        "per": None if grain == "day" else grain,
        **urlstate.date_params(start, end, last, usual),
    }
)

# --- over time -------------------------------------------------------------------------------
frame = trends.series(store, user, chosen, participants=people, start=start, end=end, granularity=grain)
total = int(frame["count"].sum())
if total == 0:
    st.info(
        f"No check-ins between {escape_markdown(start)} and {escape_markdown(end)} for these filters. Widen the "
        f"date range (this data runs from {escape_markdown(first)} to {escape_markdown(last)}) or clear the "
        "participant filter."
    )
    st.stop()

mean = float((frame["mean"] * frame["count"]).sum() / total)
negative = float((frame["negative"] * frame["count"]).sum() / total)
latest = frame["rolling"].dropna()
cols = st.columns(4, vertical_alignment="bottom")
cols[0].metric("Check-ins", f"{total:,}", help=f"From {escape_markdown(start)} to {escape_markdown(end)}")
cols[1].metric(
    "Mean sentiment",
    f"{mean:+.2f}",
    help="Mean of P(positive) − P(negative) over the check-ins: −1 all negative, +1 all positive",
)
cols[2].metric("Negative", f"{negative:.0%}", help="Share of check-ins the model labelled negative")
text_ok = trends.may_export_text(user, settings().export_text)
with_text = text_ok and cols[3].toggle("With text", value=False, help="Add the message text to the CSV")
cols[3].download_button(
    "Download CSV",
    data=lambda: csv_bytes(
        trends.export_rows(
            store,
            user,
            chosen,
            participants=people,
            start=start,
            end=end,
            include_text=with_text,
            managers_may_export_text=settings().export_text,
        )
    ),
    file_name=f"pulse-checkins-{start}-{end}.csv",
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
    help="The check-ins behind these filters: ids, times, labels and scores"
    + (", with their text" if with_text else "" if text_ok else " (message text is not exported: setting export_text)"),
)
st.plotly_chart(trend_figure(frame, grain), width="stretch", key="trend_chart")
window = "7 days" if grain == "day" else "4 weeks"
st.caption(
    f"Mean sentiment: the mean of P(positive) − P(negative) over the check-ins. The rolling average covers "
    f"the last {window} and is weighted by check-ins. Days are UTC days; weeks start on Monday."
    + (f" Latest rolling average: {float(latest.iloc[-1]):+.2f}." if len(latest) else "")
)

# --- participants ------------------------------------------------------------------------------
st.subheader("Participants")
left, right = st.columns([2, 3], vertical_alignment="bottom")
group = left.selectbox("Group", chosen, key="trend_heat_group")
heat = trends.heatmap(store, user, group, start=start, end=end, granularity=grain)
if heat.total == 0:
    st.info("Nobody in this group checked in during the range: widen the date range or pick another group.")
    st.stop()
shown = len(heat.participants)
if shown < heat.total:
    right.caption(f"The {shown:,} of {heat.total:,} participants with the lowest mean sentiment, lowest first.")
else:
    right.caption(f"All {heat.total:,} participants with check-ins in the range, lowest mean sentiment first.")
clicked = st.plotly_chart(
    heatmap_figure(heat, frame["period"], grain),
    width="stretch",
    key="trend_heatmap",
    on_select="rerun",
    selection_mode="points",
)
st.caption("Click a cell to read that participant's check-ins below, or pick them from the list.")
picked_in_heatmap = clicked_participant(heat, clicked)
if picked_in_heatmap is not None and picked_in_heatmap != st.session_state.get("trend_heat_applied"):
    # A new click (not the one still selected from before): it chooses the person below.
    st.session_state["trend_person"] = picked_in_heatmap
    st.session_state["trend_row"] = {"selection": {"rows": []}}
st.session_state["trend_heat_applied"] = picked_in_heatmap

others = [p for p in trends.participants(store, user, [group]) if p not in set(heat.participants)]
person = st.selectbox(
    "Read the check-ins of",
    [None, *heat.participants, *others],
    format_func=lambda p: "Choose a participant…" if p is None else p,
    key="trend_person",
    on_change=lambda: st.session_state.update(trend_row={"selection": {"rows": []}}),  # another person's rows
)
if person is None:
    st.caption("Choose a participant to read their check-ins, newest first.")
    st.stop()

line = trends.timeline(store, user, person, [group], start=start, end=end)
st.markdown(
    f"**{escape_markdown(person)}** · {len(line):,} check-in(s) from {escape_markdown(start)} to "
    f"{escape_markdown(end)}, newest first"
)
if line.empty:
    st.info("No check-ins from this participant in the range: widen the date range.")
    st.stop()
picked = st.dataframe(
    line.assign(human_label=line["human_label"].fillna("")),  # no reviewer's label: a blank cell
    key="trend_row",
    on_select="rerun",
    selection_mode="single-row",
    hide_index=True,
    width="stretch",
    # Fits 1280 px: the model version is in the panel of a selected check-in, and in the CSV.
    column_order=["time", "text", "label", "confidence", "human_label", "relabelled"],
    column_config={
        "time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm", width=130),
        "text": st.column_config.TextColumn("Message", width=380, help="Select the row to read it whole"),
        "label": st.column_config.TextColumn("Model's label", width=105),
        "confidence": st.column_config.ProgressColumn(
            "Confidence", format="%.2f", min_value=0.0, max_value=1.0, width=100
        ),
        "human_label": st.column_config.TextColumn("Reviewer's label", width=110),
        "relabelled": st.column_config.CheckboxColumn(
            "Relabelled", help="A reviewer chose a different label than the model", width=85
        ),
    },
)
if len(line) == trends.TIMELINE_ROWS:
    st.caption(f"Showing the newest {trends.TIMELINE_ROWS:,}; narrow the date range to read older ones.")


def why_panel(row: pd.Series) -> None:
    """One check-in as written, and the words the live model leans on for its label: what a red day
    is made of. Without the endpoint the message still shows, with no explanation."""
    with st.container(border=True):
        st.caption(
            escape_markdown(
                f"{row['time']:%Y-%m-%d %H:%M} UTC · {row['group']} · {row['model_version']} said {row['label']} "
                f"({row['confidence']:.0%} sure)"
            )
        )
        st.text(row["text"])  # the message exactly as written: never markdown or HTML
        try:
            reason = why(workspace().endpoint, str(row["text"]), max_chars=settings().max_text_chars)
        except PulseError:
            st.caption("The live model cannot be asked right now: no explanation of the label.")
            return
        # A check-in scored by an earlier model: the live one is what is explained, and it may disagree.
        before = (
            f"Scored {row['label']} by {row['model_version']}; the live model now says {reason.label}. "
            if reason.version != row["model_version"]
            else ""
        )
        live = f"live model, {reason.version}"
        if reason.words:
            st.caption(
                escape_markdown(f"{before}What weighs most for {reason.label} ({live}): {', '.join(reason.words)}")
            )
        else:
            st.caption(
                escape_markdown(
                    f"{before}No single word decides {reason.label} ({live}): it weighs the message as a whole."
                )
            )


rows = [i for i in picked.selection.rows if 0 <= i < len(line)]  # a kept selection may outlive its rows
if rows:
    why_panel(line.iloc[rows[0]])
else:
    st.caption("Select a check-in to see what weighed most for its label, and to read it whole.")
