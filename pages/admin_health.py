"""Model health & costs: how the live model does on real check-ins over time, a preview of the
review threshold (and saving it), and what scoring costs a month."""

import pandas as pd
import streamlit as st

from dashboard.admin_charts import (
    confidence_histogram,
    cost_figure,
    health_figure,
    mix_figure,
    review_preview_figure,
)
from dashboard.admin_views import health, money, threshold_state, utc_minute, volume
from dashboard.auth import require_page
from dashboard.components import escape_markdown
from dashboard.deps import show_error, workspace
from services.errors import PulseError
from services.lifecycle.switch import move_endpoint
from services.monitoring.costs import Prices, estimate
from services.monitoring.threshold import review_preview, save_threshold

user = require_page("health")


st.title("Model health & costs")
try:
    report = health()
    state = threshold_state()
except PulseError as exc:
    show_error(exc, "check the workspace settings")
    st.stop()

recent = report.recent
if report.live_version:
    st.caption(f"Live model {escape_markdown(report.live_version)}. Figures from the scored check-ins, by UTC day.")
if recent is None:
    st.info(
        "No scored check-ins yet, so there is nothing to measure. Upload check-ins on the Upload page "
        "(or run `python -m services.cli ingest FILE`)."
    )
else:
    cols = st.columns(4)
    cols[0].metric(f"Check-ins per day (last {recent.days:,} days)", f"{recent.checkins_per_day:,.1f}")
    cols[1].metric(
        "Unrecognized (to review)",
        f"{recent.unrecognized_share:.0%}",
        help="Share with confidence below the threshold in force when they were uploaded: sent to review",
    )
    cols[2].metric("Mean confidence", f"{recent.mean_confidence:.2f}")
    cols[3].metric(
        "Drift from the training mix",
        "—" if recent.drift is None else f"{recent.drift:.2f}",
        help="Jensen–Shannon distance between the predicted label mix and the live model's training data: "
        "0 = the same mix, 1 = nothing in common",
    )
    reading = f"Over the last {recent.days:,} days, {escape_markdown(recent.reading)}."
    if recent.drift is not None and recent.drift >= 0.1:
        st.warning(reading, icon=":material/trending_up:")
    else:
        st.info(reading, icon=":material/check_circle:")

    # --- health over time
    st.subheader("Health over time")
    st.plotly_chart(health_figure(report.daily), width="stretch")
    st.caption(
        "Drift is the Jensen–Shannon distance between the day's predicted labels and the share of each label in "
        "the training data of the model version that scored them (0 to 1). A single day with a few dozen "
        "check-ins reads about 0.1 from chance alone, so watch the 7-day mean. A lasting shift means the "
        "check-ins differ from what the model learnt on — exactly what new human labels fix. Dashed vertical "
        "lines mark the days another model version took over."
    )
    st.subheader("Predicted labels against the training mix")
    st.plotly_chart(mix_figure(report.daily, report.training), width="stretch")

    # Eight columns that fit 1280 px: the three label shares read as one "28 / 32 / 40 %".
    shares = report.versions[["share_negative", "share_neutral", "share_positive"]].map(lambda v: f"{v:.0%}"[:-1])
    versions = report.versions.assign(
        first_day=lambda f: pd.to_datetime(f["first_day"]).dt.date,
        last_day=lambda f: pd.to_datetime(f["last_day"]).dt.date,
        labels=shares.agg(" / ".join, axis=1) + " %",
    )
    st.dataframe(
        versions,
        hide_index=True,
        width="stretch",
        column_order=(
            "model_version",
            "first_day",
            "last_day",
            "checkins",
            "unrecognized_share",
            "mean_confidence",
            "labels",
            "drift",
        ),
        column_config={
            "model_version": st.column_config.TextColumn("model version", width=170),
            "first_day": st.column_config.DateColumn("first day", width=92),
            "last_day": st.column_config.DateColumn("last day", width=92),
            "checkins": st.column_config.NumberColumn("check-ins", format="localized", width=75),
            "unrecognized_share": st.column_config.NumberColumn("unrecognized", format="percent", width=95),
            "mean_confidence": st.column_config.NumberColumn("confidence", format="%.2f", width=85),
            "labels": st.column_config.TextColumn(
                "neg / neu / pos",
                width=130,
                help="Share of the check-ins the model labelled negative, neutral, positive",
            ),
            "drift": st.column_config.NumberColumn("drift", format="%.2f", width=55),
        },
    )

# --- review threshold
st.subheader("Review threshold")
override = state.override
if state.problem:
    st.error(
        f"The saved threshold cannot be read ({escape_markdown(state.problem)}); the setting is in force until "
        "one is saved."
    )
if override:
    st.caption(
        f"In force: **{state.in_force:.2f}**, set by {escape_markdown(override.set_by)} on "
        f"{utc_minute(override.set_at)} "
        f"(it replaced {override.previous:.2f}, from the {escape_markdown(override.previous_source)}). It applies "
        "to uploads from now on; check-ins already scored keep their routing."
    )
else:
    st.caption(
        f"In force: **{state.in_force:.2f}**, from the setting PULSE_REVIEW_THRESHOLD (nobody has changed it "
        "here). Check-ins with a confidence below it go to the review queue."
    )
chosen = st.slider(
    "Preview a threshold",
    min_value=0.05,
    max_value=0.95,
    value=round(min(max(state.in_force, 0.05), 0.95), 2),
    step=0.01,
    key="health_threshold",
    help="Check-ins with a confidence below this value would go to the review queue",
)
if recent is not None:
    preview = review_preview(report.checkins, chosen)
    in_force = review_preview(report.checkins, state.in_force)
    last = preview["date"].max() - pd.Timedelta(days=27)
    window, window_now = preview[preview["date"] >= last], in_force[in_force["date"] >= last]
    days = max(len(window), 1)
    cols = st.columns(3)
    change = (window["to_review"].sum() - window_now["to_review"].sum()) / days
    cols[0].metric(
        "To review per day (last 28 days)",
        f"{window['to_review'].sum() / days:,.1f}",
        delta=f"{change:+,.1f} vs in force" if abs(chosen - state.in_force) > 1e-9 else None,
        delta_color="off",
    )
    cols[1].metric(
        "Share that would go to review", f"{window['to_review'].sum() / max(window['checkins'].sum(), 1):.0%}"
    )
    cols[2].metric("In force now", f"{window_now['to_review'].sum() / days:,.1f} per day")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(confidence_histogram(report.checkins["confidence"], chosen, state.in_force), width="stretch")
    with right:
        st.plotly_chart(review_preview_figure(preview, in_force, chosen, state.in_force), width="stretch")

flash = st.session_state.pop("health_saved", None)
if flash:
    st.success(escape_markdown(flash))
PENDING = "health_pending_threshold"  # the threshold waiting for confirmation


@st.dialog("Save the review threshold?", on_dismiss=lambda: st.session_state.pop(PENDING, None))
def confirm_threshold(value: float, in_force: float) -> None:
    """The save, confirmed in a dialog."""
    st.warning(
        f"Set the review threshold to {value:.2f} (now {in_force:.2f})? New uploads send check-ins with a "
        "confidence below it to the review queue; check-ins already scored are not routed again."
    )
    yes, no = st.columns(2)
    if yes.button("Confirm", type="primary", width="stretch"):
        ws = workspace()
        try:
            saved = save_threshold(ws.store, value, by=user.name, settings=ws.settings, role=user.role)
        except PulseError as exc:
            show_error(exc, "nothing was saved; pick a value between 0 and 1 and try again")
            return
        st.session_state.pop(PENDING, None)
        st.session_state["health_saved"] = f"Review threshold set to {saved.threshold:.2f} (was {saved.previous:.2f})."
        st.rerun()
    if no.button("Cancel", width="stretch"):
        st.session_state.pop(PENDING, None)
        st.rerun()


if st.button("Save threshold…", disabled=abs(chosen - state.in_force) < 1e-9, icon=":material/save:"):
    st.session_state[PENDING] = chosen
if st.session_state.get(PENDING) is not None:
    confirm_threshold(float(st.session_state[PENDING]), state.in_force)

# --- costs
MOVE = "health-move-endpoint"
MOVED = "health-moved-endpoint"


def endpoint_section(cheaper: str, serverless_mb: int) -> None:
    """What serves, and the recommendation applied in one step (with a confirmation)."""
    ws = workspace()
    if ws.mover is None:
        st.caption("This workspace scores in its own process: no endpoint is billed.")
        return
    try:
        serving = ws.mover.current()
    except PulseError as exc:
        show_error(exc, "check the workspace settings")
        return
    if MOVED in st.session_state:
        kind, text = st.session_state.pop(MOVED)
        (st.success if kind == "success" else st.error)(escape_markdown(text))
    st.caption(escape_markdown(f"The live model is served by the {serving.kind} endpoint {serving.name}."))
    if (cheaper == "serverless") == (serving.kind == "serverless"):
        return
    target_mb = serverless_mb if cheaper == "serverless" else 0
    target = f"a serverless endpoint of {target_mb:,} MB" if target_mb else "a real-time endpoint"
    if not st.session_state.get(MOVE):
        if st.button(escape_markdown(f"Move the live model to {target}"), type="primary"):
            st.session_state[MOVE] = True
            st.rerun()
        return
    st.warning(
        escape_markdown(
            f"SageMaker cannot turn one kind of endpoint into the other: the live model is deployed to a second "
            f"endpoint, scoring moves there once it serves, and {serving.name} is deleted. {serving.name} serves "
            "until then; a deployment that fails leaves it serving."
        )
    )
    yes, no = st.columns(2)
    if yes.button("Confirm the move", type="primary", width="stretch"):
        st.session_state.pop(MOVE, None)
        try:
            with st.spinner(escape_markdown(f"Deploying the live model to {target}…")):
                dep, retired = move_endpoint(ws, serverless_memory_mb=target_mb, by=user.name, role=user.role)
        except PulseError as exc:
            st.session_state[MOVED] = ("error", f"{exc} Nothing was moved: {serving.name} still serves.")
        else:
            st.session_state[MOVED] = ("success", f"{dep.version} is served by {target} now; {retired}.")
        st.rerun()
    if no.button("Cancel", width="stretch"):
        st.session_state.pop(MOVE, None)
        st.rerun()


st.subheader("Costs of scoring")
vol = volume()
defaults = Prices()
st.caption(
    f"Current volume: {vol.messages_per_day:,.1f} check-ins per day over the last 28 days, "
    f"{vol.chars_per_message:,.0f} characters each on average. The prices below are editable assumptions in the "
    "shape of SageMaker's price list, not quotes: check the pricing page for your region."
)
with st.expander("Prices and assumptions (editable)", expanded=False):
    a, b, c = st.columns(3)
    instance = a.number_input(
        "Real-time: $ per instance-hour", 0.0, value=defaults.instance_per_hour, step=0.005, format="%.4f"
    )
    instances = a.number_input("Real-time: instances", 1, value=defaults.instances, step=1)
    hours = a.number_input("Hours per month", 1.0, 744.0, value=defaults.hours_per_month, step=1.0, format="%.0f")
    gb_second = b.number_input(
        "Serverless: $ per GB-second", 0.0, value=defaults.per_gb_second, step=0.000001, format="%.7f"
    )
    memory = b.number_input("Serverless: memory (GB)", 1.0, 6.0, value=defaults.memory_gb, step=1.0, format="%.0f")
    per_million = b.number_input(
        "Serverless: $ per million requests", 0.0, value=defaults.per_million_requests, step=0.05
    )
    ms_request = c.number_input("Milliseconds per request (fixed)", 0.0, value=defaults.ms_per_request, step=5.0)
    ms_chars = c.number_input("Milliseconds per 1,000 characters", 0.0, value=defaults.ms_per_1k_chars, step=0.5)
batch = st.columns(3)[0].number_input(
    "Messages per request (batching)",
    1,
    10_000,
    value=1,
    step=1,
    help="Send several check-ins in one call: fewer, longer requests (serverless bills each request and its time)",
)
prices = Prices(
    instance_per_hour=instance,
    instances=int(instances),
    hours_per_month=hours,
    per_gb_second=gb_second,
    memory_gb=memory,
    per_million_requests=per_million,
    ms_per_request=ms_request,
    ms_per_1k_chars=ms_chars,
)
est = estimate(prices, vol, int(batch))
cols = st.columns(3)
cols[0].metric("Real-time endpoint", f"{money(est.realtime)} / month", help="Instance-hours × price × instances")
cols[1].metric(
    "Serverless",
    f"{money(est.serverless)} / month",
    help=f"{est.requests_per_month:,.0f} requests of {est.seconds_per_request * 1000:,.0f} ms: "
    f"{money(est.serverless_compute)} compute + {money(est.serverless_requests)} request fees",
)
cols[2].metric(
    "Break-even",
    f"{est.break_even_messages_per_day:,.0f} / day",
    help=f"{est.break_even_requests:,.0f} requests a month: above it the real-time endpoint is cheaper",
)
if est.cheaper == "serverless":
    st.markdown(
        f"At {vol.messages_per_day:,.0f} check-ins a day **serverless is cheaper**: {money(est.serverless)} "
        f"against {money(est.realtime)} a month; a real-time endpoint pays off only above about "
        f"{est.break_even_messages_per_day:,.0f} check-ins a day."
    )
else:
    st.markdown(
        f"At {vol.messages_per_day:,.0f} check-ins a day **the real-time endpoint is cheaper**: serverless would cost "
        f"{money(est.serverless)} against {money(est.realtime)} a month."
    )
endpoint_section(est.cheaper, int(memory) * 1024)
if est.realtime_busy_share > 0.7:
    st.warning(
        f"The real-time instances would be busy {est.realtime_busy_share:.0%} of the time at this volume: "
        "add instances (and their cost) or batch more messages per request."
    )
st.plotly_chart(cost_figure(prices, vol, int(batch), est), width="stretch")
