"""Alerts: who needs attention now, in the groups the signed-in user looks after."""

import pandas as pd
import streamlit as st

from dashboard import urlstate
from dashboard.auth import require_page
from dashboard.components import WRAP_ROW, escape_markdown, wrap_row
from dashboard.deps import show_error, workspace
from dashboard.queries import alerts, triggering_checkins
from services.errors import PulseError
from services.monitoring.alerts import SEVERITIES, STATUSES, Alert
from services.monitoring.inbox import acknowledge, resolve
from services.monitoring.rules import (
    LIMITS,
    BaselineDrop,
    ConsecutiveNegative,
    CrisisPhrases,
    GroupNegativeShare,
    Rules,
    load_rules,
    save_rules,
)

user = require_page("alerts")

BADGE = {
    "critical": ":red-background[critical]",
    "warning": ":orange-background[warning]",
    "info": ":blue-background[info]",
}
scope = "any group" if user.sees_all_groups() else "your groups"

st.title("Alerts")
st.caption(
    "Who needs attention now. Alerts are raised when check-ins are ingested (negative streaks, a drop below "
    "someone's usual mood, a group that is mostly negative, crisis language) or when an annotator flags a "
    "message as urgent."
)
if "alerts_flash" in st.session_state:
    st.success(escape_markdown(st.session_state.pop("alerts_flash")))
if "alerts_error" in st.session_state:
    st.error(escape_markdown(st.session_state.pop("alerts_error")))


def act(kind: str, alert_id: str) -> None:
    """Acknowledge or resolve, with the note typed beside the buttons."""
    note_key = f"alert-note-{alert_id}"
    try:
        if kind == "acknowledge":
            acknowledge(workspace().store, alert_id, user, st.session_state.get(note_key, ""))
        else:
            resolve(workspace().store, alert_id, user, st.session_state.get(note_key, ""))
    except PulseError as exc:
        st.session_state["alerts_error"] = f"{exc}"
        return
    st.session_state[note_key] = ""
    st.session_state["alerts_flash"] = "Alert acknowledged." if kind == "acknowledge" else "Alert resolved."


def minute(iso: str) -> str:
    """A stored time to the minute, as plain text (tables and select boxes show text as it is)."""
    return iso[:16].replace("T", " ")


def when(iso: str) -> str:
    """`minute`, for Markdown."""
    return escape_markdown(minute(iso))


def describe(alert: Alert) -> str:
    who = alert.participant or "whole group"
    return f"{alert.severity} · {alert.title} · {alert.group} · {who} · {minute(alert.at)} · {alert.status}"


try:
    everything = alerts(user)
except PulseError as exc:
    show_error(exc, "try again in a moment")
    st.stop()

cols = st.columns(4)
cols[0].metric("Open", sum(a.status == "open" for a in everything))
cols[1].metric("Open and critical", sum(a.status == "open" and a.severity == "critical" for a in everything))
cols[2].metric("Acknowledged", sum(a.status == "acknowledged" for a in everything))
cols[3].metric("Resolved", sum(a.status == "resolved" for a in everything))

filters = st.columns(3)  # kept in the address, as on Trends
known_groups = sorted({a.group for a in everything})
urlstate.seed("alert-status", "status", STATUSES, ["open", "acknowledged"], many=True)
urlstate.seed("alert-severity", "severity", SEVERITIES, [], many=True)
urlstate.seed("alert-group", "group", known_groups, [], many=True)
statuses = filters[0].multiselect("Status", STATUSES, key="alert-status")
severities = filters[1].multiselect("Severity", SEVERITIES, placeholder="All severities", key="alert-severity")
groups = filters[2].multiselect("Group", known_groups, placeholder="All groups", key="alert-group")
urlstate.publish(
    {
        "status": None if set(statuses) == {"open", "acknowledged"} else statuses or list(STATUSES),
        "severity": severities or None,
        "group": groups or None,
    }
)
shown = [
    a
    for a in everything
    if (not statuses or a.status in statuses)
    and (not severities or a.severity in severities)
    and (not groups or a.group in groups)
]

if not shown:
    if not any(a.status == "open" for a in everything):
        st.info(
            f"No open alerts for {scope}. New alerts appear here when check-ins that call for attention are "
            "ingested, or when an annotator flags a message as urgent."
        )
    else:
        st.info("No alerts match these filters: clear a filter to see the open ones.")
else:
    inbox = pd.DataFrame(
        [
            {
                "status": a.status,
                "severity": a.severity,
                "group": a.group,
                "participant": a.participant or "(whole group)",
                "when": minute(a.at),
                "alert": a.title,
                "reason": a.reason,
            }
            for a in shown
        ]
    )
    # Shown in five columns that fit 1280 px, wrapped in rows tall enough for four lines: who and the
    # group together, and the alert's title in front of its reason (cut at the table's edge, the reason
    # was the one column that says why).
    inbox["who"] = inbox["participant"] + " · " + inbox["group"]
    inbox["what"] = inbox["alert"] + ": " + inbox["reason"]
    st.dataframe(
        inbox,
        hide_index=True,
        width="stretch",
        row_height=wrap_row(4),
        height=min(len(inbox), 8) * wrap_row(4) + 38,
        column_order=("severity", "status", "who", "when", "what"),
        column_config={
            "severity": st.column_config.TextColumn(width=75),
            "status": st.column_config.TextColumn(width=105),
            "who": st.column_config.TextColumn(width=160),
            "when": st.column_config.TextColumn(width=130),
            "what": st.column_config.TextColumn("alert", width=300),  # the grid stretches it to the edge
        },
    )
    by_id = {a.id: a for a in shown}
    chosen = st.selectbox("Open an alert", list(by_id), format_func=lambda i: describe(by_id[i]), key="alert-choice")
    alert = by_id[chosen or next(iter(by_id))]

    with st.container(border=True):
        st.markdown(
            f"{BADGE.get(alert.severity, escape_markdown(alert.severity))} **{escape_markdown(alert.title)}** · "
            f"{escape_markdown(alert.status)}"
        )
        st.caption(
            f"{escape_markdown(alert.group)} · {escape_markdown(alert.participant or 'whole group')} · "
            f"latest check-in {when(alert.at)} UTC · raised {when(alert.created_at)} UTC"
        )
        st.text(alert.reason)
        if alert.rule == "manual" and alert.note:
            st.text(f"Note from {alert.by}: {alert.note}")

        st.markdown("**Check-ins behind this alert**")
        try:
            rows = triggering_checkins(user, alert.id)
        except PulseError as exc:
            show_error(exc)
        else:
            if rows.empty:
                st.caption("These check-ins are no longer in the workspace.")
            else:
                table = pd.DataFrame(
                    {
                        "time (UTC)": rows["time"].dt.strftime("%Y-%m-%d %H:%M"),
                        "model label": rows["label"],
                        "confidence": [f"{c:.0%}" for c in rows["confidence"]],
                        "text": rows["text"],  # shown as plain text by the data grid
                    }
                )
                st.dataframe(
                    table,
                    hide_index=True,
                    width="stretch",
                    row_height=WRAP_ROW,
                    column_config={
                        "time (UTC)": st.column_config.TextColumn(width=130),
                        "model label": st.column_config.TextColumn(width=90),
                        "confidence": st.column_config.TextColumn(width=90),
                        "text": st.column_config.TextColumn(width="large"),
                    },
                )

        st.markdown("**History**")
        if alert.history:
            history = pd.DataFrame(
                [{"status": c.status, "by": c.by, "when (UTC)": minute(c.at), "note": c.note} for c in alert.history]
            )
            st.dataframe(history, hide_index=True, width="stretch")
        else:
            st.caption("Nobody has acknowledged this alert yet.")
        st.text_input(
            "Note",
            key=f"alert-note-{alert.id}",
            max_chars=1000,
            placeholder="What you did, or will do (needed to resolve)",
        )
        buttons = st.columns(2)
        buttons[0].button(
            "Acknowledge",
            key="alert-ack",
            on_click=act,
            args=("acknowledge", alert.id),
            disabled=alert.status != "open",
            width="stretch",
        )
        buttons[1].button(
            "Resolve",
            key="alert-resolve",
            type="primary",
            on_click=act,
            args=("resolve", alert.id),
            disabled=alert.status == "resolved",
            width="stretch",
        )

try:
    rules = load_rules(workspace().store)
except PulseError as exc:
    show_error(exc, "an admin can save the rules again below")
    rules = Rules()

with st.expander("How alerts are raised"):
    cn, bd, gs, cp = rules.consecutive_negative, rules.baseline_drop, rules.group_negative_share, rules.crisis_phrases
    off = " (off)"
    st.markdown(
        f"- **Negative streak**{'' if cn.enabled else off}: {cn.count:,} negative check-ins in a row by one "
        "person (days without a check-in do not break a streak), the latest within 7 days.\n"
        f"- **Drop below own baseline**{'' if bd.enabled else off}: someone's mean mood over the last 7 days "
        f"(from -1 to +1: the model's positive minus negative probability) is more than {bd.drop:.2f} below "
        f"their mean over the 28 days before, with at least {bd.min_checkins:,} check-ins in each.\n"
        f"- **Group mostly negative**{'' if gs.enabled else off}: more than {gs.share:.0%} of a group's check-ins "
        f"of the last 7 days are negative, with at least {gs.min_checkins:,} check-ins.\n"
        f"- **Crisis language**{'' if cp.enabled else off}: a check-in holds one of {len(cp.phrases):,} crisis or "
        "self-harm phrases, matches one of the shipped patterns of indirect crisis language (hopelessness, "
        "feeling a burden, no one would notice, saying goodbye, giving things away), or reads as crisis "
        "language to a signal learned from Pulse's check-in corpus; whatever the model says (critical; a "
        "warning when only the learned signal finds it, and less surely: read it today).\n"
        "- **Flagged as urgent**: an annotator flagged a message while labelling it (critical)."
    )
    if rules.updated_by:
        st.caption(f"Rules last changed by {escape_markdown(rules.updated_by)} on {when(rules.updated_at)} UTC.")

if user.role == "admin":
    with st.expander("Edit the alert rules (admins)"):
        with st.form("alert-rules"):
            lo, hi = LIMITS["consecutive_negative.count"]
            st.markdown("**Negative streak**")
            cn_on = st.checkbox("On", value=cn.enabled, key="rule-cn-on")
            cn_count = st.number_input(
                "Negative check-ins in a row", min_value=lo, max_value=hi, value=cn.count, step=1, key="rule-cn-count"
            )
            st.markdown("**Drop below own baseline**")
            bd_on = st.checkbox("On", value=bd.enabled, key="rule-bd-on")
            lo, hi = LIMITS["baseline_drop.drop"]
            left, right = st.columns(2)
            bd_drop = left.number_input(
                "Drop in mean mood (scale -1 to +1)",
                min_value=float(lo),
                max_value=float(hi),
                value=float(bd.drop),
                step=0.05,
                format="%.2f",
                key="rule-bd-drop",
            )
            lo, hi = LIMITS["baseline_drop.min_checkins"]
            bd_min = right.number_input(
                "At least this many check-ins in each window",
                min_value=lo,
                max_value=hi,
                value=bd.min_checkins,
                step=1,
                key="rule-bd-min",
            )
            st.markdown("**Group mostly negative**")
            gs_on = st.checkbox("On", value=gs.enabled, key="rule-gs-on")
            lo, hi = LIMITS["group_negative_share.share"]
            left, right = st.columns(2)
            gs_share = left.number_input(
                "Negative share above",
                min_value=float(lo),
                max_value=float(hi),
                value=float(gs.share),
                step=0.05,
                format="%.2f",
                key="rule-gs-share",
            )
            lo, hi = LIMITS["group_negative_share.min_checkins"]
            gs_min = right.number_input(
                "At least this many check-ins in the 7 days",
                min_value=lo,
                max_value=hi,
                value=gs.min_checkins,
                step=1,
                key="rule-gs-min",
            )
            st.markdown("**Crisis language**")
            cp_on = st.checkbox("On", value=cp.enabled, key="rule-cp-on")
            phrases = st.text_area(
                "Phrases, one per line (whole words; case, accents and apostrophes are ignored)",
                value="\n".join(cp.phrases),
                height=220,
                key="rule-cp-phrases",
            )
            submitted = st.form_submit_button("Save rules", type="primary")
        if submitted:
            new = Rules(
                consecutive_negative=ConsecutiveNegative(cn_on, int(cn_count)),
                baseline_drop=BaselineDrop(bd_on, float(bd_drop), int(bd_min)),
                group_negative_share=GroupNegativeShare(gs_on, float(gs_share), int(gs_min)),
                crisis_phrases=CrisisPhrases(cp_on, tuple(line for line in phrases.splitlines() if line.strip())),
            )
            try:
                save_rules(workspace().store, new, user.name, role=user.role)
            except PulseError as exc:
                show_error(exc, "fix the value and save again")
            else:
                st.success("Rules saved. They apply to check-ins ingested from now on.")
