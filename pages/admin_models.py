"""Models & deploy: the registry, a model card per version, two versions compared on the gold set,
and deployment: the gate's verdict, promote (with a written override when the gate refuses),
rollback, the deployment history and the endpoint's status."""

import pandas as pd
import streamlit as st

from dashboard.admin_jobs import (
    comparison,
    confusion_figure,
    disagreements_frame,
    gate_verdict,
    history_frame,
    per_class_frame,
    registry,
    verdict_frame,
)
from dashboard.auth import require_page
from dashboard.components import WRAP_ROW, escape_markdown, when
from dashboard.deps import show_error, workspace
from services.errors import DeployFailed, GateFailed, ModelUnavailable, PulseError
from services.lifecycle.deployment import current
from services.lifecycle.switch import roll_back, switch_to
from services.model.evaluation import rounded
from services.model.params import describe_params

user = require_page("models")


CONFIRM_PROMOTE = "models_confirm_promote"  # version waiting for confirmation
CONFIRM_ROLLBACK = "models_confirm_rollback"  # version to roll back to, waiting for confirmation
OUTCOME = "models_outcome"  # (kind, message) of the last promote or rollback, shown after the rerun

st.title("Models & deploy")
ws = workspace()
store = ws.store


try:
    table, cards = registry()
    live = current(store)
    hist = history_frame()
except PulseError as exc:
    show_error(exc, "check the workspace settings")
    st.stop()
if table.empty:
    st.info("No model is registered yet: run `python -m services.cli bootstrap`, or train one on the Training page.")
    st.stop()
versions = list(cards)  # newest first
live_version = live.version if live else None

if live is not None:
    st.markdown(f"**Live model** {escape_markdown(live.version)}")
    st.caption(
        f"Deployed {when(live.deployed_at)} by "
        f"{escape_markdown(live.deployed_by)}. Reason: {escape_markdown(live.reason)}"
    )
else:
    st.warning("No model is deployed yet: promote a version below.")
cols = st.columns(3)
cols[0].metric("Registered versions", len(versions))
cols[1].metric("Deployments", len(hist))
cols[2].metric("Gate margin", f"{ws.settings.gate_margin:.3f}", help="Largest macro-F1 drop a promotion may cause")

st.subheader("Registry")
# Columns that fit 1280 px, rows that wrap: who made a version goes with when, and the artifact column
# shows only when one is missing (that is the only time it says something).
table = table.assign(created=table["created"] + " by " + table["by"])
shown_columns = ["live", "version", "macro-F1", "accuracy", "ECE", "family", "created", "dataset"]
if (table["artifact"] != "ok").any():
    shown_columns.append("artifact")
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    row_height=WRAP_ROW,
    height=min(len(table), 6) * WRAP_ROW + 38,
    column_order=shown_columns,
    column_config={
        "live": st.column_config.TextColumn(width=55),
        "version": st.column_config.TextColumn(width=165),
        **{name: st.column_config.NumberColumn(format="%.3f", width=72) for name in ("macro-F1", "accuracy", "ECE")},
        "family": st.column_config.TextColumn(width=65),
        "created": st.column_config.TextColumn("created (UTC)", width=140),
        "dataset": st.column_config.TextColumn(width=150),  # stretched to the table's edge
        "artifact": st.column_config.TextColumn(width=70),
    },
)


def _name(version: str) -> str:
    return f"{version} (live)" if version == live_version else version


# --- one version: its card
st.subheader("Model card")
default = next((i for i, v in enumerate(versions) if v != live_version), 0)
version = st.selectbox("Version", versions, index=default, format_func=_name, key="models_version")
card = cards[version]
m = card.metrics


def _pairs(facts: dict[str, str], what: str = "about this version") -> None:
    """Name and value, one per row, the value wrapped when it runs long."""
    st.dataframe(
        pd.DataFrame({what: list(facts), "value": list(facts.values())}),
        hide_index=True,
        width="stretch",
        row_height=WRAP_ROW if any(len(v) > 40 for v in facts.values()) else None,
        height="content",
        column_config={what: st.column_config.TextColumn(width=150), "value": st.column_config.TextColumn(width=200)},
    )


def _number(name: str, fmt: str) -> str:
    value = m.get(name)
    if not isinstance(value, int | float):
        return "—"
    return escape_markdown(format(rounded(value) if name != "n" else value, fmt))


cols = st.columns(4)
cols[0].metric("Macro-F1 (gold)", _number("macro_f1", ".3f"))
cols[1].metric("Accuracy (gold)", _number("accuracy", ".3f"))
cols[2].metric("Calibration error (ECE)", _number("ece", ".3f"), help="Lower is better")
cols[3].metric("Gold messages", _number("n", ",.0f"))
left, right = st.columns(2)
with left:
    facts = {
        "created": f"{card.created_at[:16].replace('T', ' ')} UTC by {card.created_by}",
        "family": card.family,
        "trainer": card.trainer,
        "dataset": card.dataset,
        "parent (live when trained)": card.parent or "—",
        "training time": f"{card.training_seconds:.1f}s",
        "temperature": f"{card.temperature:g}",
        "gold set": str(m.get("gold_set", "—")),
    }
    _pairs(facts)
    if card.notes:
        st.caption("Notes")
        st.text(card.notes)
with right:
    _pairs(describe_params(card.params), "hyperparameter")

# --- deploy
st.subheader("Deploy")
outcome = st.session_state.pop(OUTCOME, None)
if outcome:
    kind, message = outcome
    (st.success if kind == "success" else st.error)(escape_markdown(message))


def _forget(key: str) -> None:
    st.session_state.pop(key, None)


@st.dialog("Promote this version?", on_dismiss=lambda: _forget(CONFIRM_PROMOTE))
def confirm_promote(version: str, reason: str, override: str) -> None:
    """The switch, confirmed in a dialog; the gate runs again as it deploys."""
    st.markdown(
        f"Deploy {escape_markdown(version)} in place of {escape_markdown(live_version or 'nothing')}? "
        "The endpoint switches to it and the review queue is re-ranked by it."
    )
    if override:
        st.warning("The gate refuses this version: your override reason is recorded with the deployment.")
    yes, no = st.columns(2)
    if yes.button("Confirm promote", type="primary", key="confirm-promote", width="stretch"):
        # An override reason is for one promotion only: never carried over to the next one.
        for key in (CONFIRM_PROMOTE, "override_reason", "promote_reason"):
            _forget(key)
        try:
            with st.spinner(f"Gating, deploying and re-ranking the queue by {escape_markdown(version)}…"):
                done = switch_to(
                    ws, version, by=user.name, reason=reason, override_reason=override or None, role=user.role
                )
        except (ModelUnavailable, GateFailed, DeployFailed) as exc:
            st.session_state[OUTCOME] = ("error", f"{exc} Nothing was switched: {live_version} still serves.")
        except PulseError as exc:
            st.session_state[OUTCOME] = ("error", f"{exc}")
        else:
            gate_note = (
                "" if done.verdict is None or done.verdict.passed else " (gate overridden; the reason is recorded)"
            )
            dep = done.deployment
            st.session_state[OUTCOME] = (
                "success",
                f"{dep.version} is live{gate_note}; previous: {dep.previous}. {done.queue_note()}".strip(),
            )
        st.rerun()
    if no.button("Cancel", key="cancel-promote", width="stretch"):
        _forget(CONFIRM_PROMOTE)
        st.rerun()


@st.dialog("Roll back?", on_dismiss=lambda: _forget(CONFIRM_ROLLBACK))
def confirm_rollback(target: str, current_version: str) -> None:
    st.markdown(
        f"Put {escape_markdown(target)} back in place of {escape_markdown(current_version)}? No gate: it served before."
    )
    why = st.text_input("Why roll back", value="rolled back from the Models page", key="rollback_reason")
    yes, no = st.columns(2)
    if yes.button("Confirm rollback", type="primary", key="confirm-rollback", width="stretch"):
        _forget(CONFIRM_ROLLBACK)
        try:
            with st.spinner(f"Rolling back to {escape_markdown(target)}…"):
                done = roll_back(ws, by=user.name, reason=why.strip() or "from the Models page", role=user.role)
        except PulseError as exc:
            st.session_state[OUTCOME] = ("error", f"{exc}")
        else:
            st.session_state[OUTCOME] = (
                "success",
                f"Rolled back: {done.deployment.version} is live again. {done.queue_note()}",
            )
        st.rerun()
    if no.button("Cancel", key="cancel-rollback", width="stretch"):
        _forget(CONFIRM_ROLLBACK)
        st.rerun()


verdict = None
if version == live_version:
    st.info(f"{escape_markdown(version)} is the live model.")
else:
    try:
        verdict = gate_verdict(version)
    except ModelUnavailable as exc:
        show_error(exc, "this version cannot be evaluated or promoted; retrain it")
    except PulseError as exc:
        show_error(exc, "the gate could not be evaluated; check the gold set")
    else:
        if verdict.passed:
            st.success(f"Gate: {escape_markdown(verdict.explain())}.")
        else:
            st.warning(f"Gate: {escape_markdown(verdict.explain())}. Promoting it needs a written override reason.")
        st.dataframe(
            verdict_frame(verdict),
            hide_index=True,
            column_config={
                name: st.column_config.NumberColumn(format="%+.3f" if name == "change" else "%.3f")
                for name in ("candidate", "live", "change")
            },
        )

# A confirmation stays open while it waits, even if the version went live meanwhile (another admin,
# another tab): confirming then lets the service refuse it with its own message.
if st.session_state.get(CONFIRM_PROMOTE) not in (None, version):
    _forget(CONFIRM_PROMOTE)  # a confirmation asked for another version: the admin has moved on
pending = st.session_state.get(CONFIRM_PROMOTE) == version
if version != live_version or pending:
    reason = st.text_input("Why deploy it", value="promoted from the Models page", key="promote_reason")
    override = ""
    if verdict is not None and not verdict.passed:
        override = st.text_area(
            "Override reason (recorded with the deployment)",
            key="override_reason",
            placeholder="Why this version should serve although it scores lower on the gold set",
        )
    needs_override = verdict is not None and not verdict.passed and not override.strip()
    if st.button(f"Promote {escape_markdown(version)}", icon=":material/rocket_launch:", disabled=needs_override):
        st.session_state[CONFIRM_PROMOTE] = version
    if st.session_state.get(CONFIRM_PROMOTE) == version:
        confirm_promote(version, reason.strip() or "promoted from the Models page", override.strip())

if live is not None and live.previous:
    if st.button(f"Roll back to {escape_markdown(live.previous)}", icon=":material/undo:"):
        st.session_state[CONFIRM_ROLLBACK] = live.previous
    if st.session_state.get(CONFIRM_ROLLBACK) == live.previous:
        confirm_rollback(live.previous, live.version)

with st.expander("Endpoint", expanded=ws.settings.models_kind == "sagemaker"):
    if ws.settings.models_kind == "sagemaker":
        try:
            status = ws.deployer.status()
        except PulseError as exc:
            show_error(exc, "check the SageMaker permissions of the app's role")
        else:
            st.dataframe(
                pd.DataFrame({"": list(status), "value": list(status.values())}), hide_index=True, width="stretch"
            )
    else:
        st.caption("Not applicable: the local backend scores in the app's own process; promoting switches it at once.")

st.markdown("**Deployment history**")
if hist.empty:
    st.caption("Nothing deployed yet.")
else:
    st.dataframe(hist, hide_index=True, width="stretch")

# --- two versions side by side
st.subheader("Compare two versions")
if len(versions) < 2:
    st.caption("Only one version is registered: there is nothing to compare it with yet.")
    st.stop()
left, right = st.columns(2)
a = left.selectbox(
    "A", versions, index=versions.index(live_version) if live_version in versions else 1, format_func=_name
)
b = right.selectbox("B", versions, index=versions.index(version), format_func=_name)
if a == b:
    st.info("Pick two different versions.")
    st.stop()
try:
    comp = comparison(a, b)
except PulseError as exc:
    show_error(exc, "pick another version")
    st.stop()

st.caption(
    f"Both scored on the same {comp.n:,} gold messages (gold set {escape_markdown(comp.gold_set)}); they disagree on "
    f"{comp.disagreeing:,} of them."
)
st.dataframe(
    pd.DataFrame(comp.metrics()),
    hide_index=True,
    column_config={
        "A": st.column_config.NumberColumn(format="%.3f"),
        "B": st.column_config.NumberColumn(format="%.3f"),
        "B - A": st.column_config.NumberColumn(format="%+.3f", help="For ECE, lower is better"),
    },
)
left, right = st.columns(2)
left.plotly_chart(confusion_figure(comp.a.evaluation.confusion, f"A: {a}"), width="stretch")
right.plotly_chart(confusion_figure(comp.b.evaluation.confusion, f"B: {b}"), width="stretch")
st.markdown("**Per class: precision, recall and F1, and how B changes them**")
st.dataframe(
    per_class_frame(comp),
    hide_index=True,
    width="stretch",
    column_config={
        col: st.column_config.NumberColumn(format="%+.3f" if col.endswith("change") else "%.3f")
        for col in per_class_frame(comp).columns
        if col not in ("class", "support")
    },
)
st.markdown("**Gold messages they label differently**")
if comp.disagreeing == 0:
    st.caption("None: they label every gold message the same.")
else:
    st.caption(
        f"{len(comp.disagreements):,} of {comp.disagreeing:,}; first those one of them gets right "
        "(right = A: B broke it, right = B: B fixed it)."
    )
    st.dataframe(
        disagreements_frame(comp),
        hide_index=True,
        width="stretch",
        column_config={
            "message": st.column_config.TextColumn(width="large"),
            "A confidence": st.column_config.NumberColumn(format="%.2f"),
            "B confidence": st.column_config.NumberColumn(format="%.2f"),
        },
    )
