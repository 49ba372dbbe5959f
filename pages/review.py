"""Review: label the messages the model was unsure about, one at a time, from the keyboard."""

import time

import streamlit as st

from dashboard.auth import require_page
from dashboard.components import escape_markdown, shipped_markdown
from dashboard.deps import labeling, show_error, workspace
from services.errors import PulseError
from services.lifecycle.explain import Why, why
from services.monitoring.inbox import flag_urgent
from services.review.items import ReviewItem

user = require_page("review")

ORDERS = {
    "uncertain": "Least sure first",
    "oldest": "Oldest first",
    "group": "By group",
    "random": "Random (spot check)",
}
DECISIONS = (
    ("negative", "Negative", "1"),
    ("neutral", "Neutral", "2"),
    ("positive", "Positive", "3"),
    ("unclear", "Can't tell", "4"),
)

st.title("Review queue")
service = labeling()
with st.expander("Guidelines"):
    st.markdown(shipped_markdown("services.review", "guidelines.md"))
order = st.segmented_control("Order", list(ORDERS), format_func=ORDERS.__getitem__, default="uncertain")
group = None
if order == "group":
    waiting = service.queue_groups()
    if not waiting:
        st.info("The queue is empty: nothing to pick a group from.")
        st.stop()
    group = st.selectbox("Group", list(waiting), format_func=lambda g: f"{g} ({waiting[g]:,} waiting)")

try:
    item = service.claim_next(user, order or "uncertain", group)
    stats = service.stats(user.name)
except PulseError as exc:
    show_error(exc, "try again in a moment")
    st.stop()

st.caption(
    f"Done today: {stats.get('labelled_today_by_me', 0):,} by you, {stats.get('labelled_today', 0):,} in all · "
    f"about {stats.get('queue_left', 0):,} messages left in the queue (repeated texts counted once)"
)


def act(kind: str, item_id: str, label: str | None = None) -> None:
    if kind != "undo" and item_id == st.session_state.get("review_last"):
        # A key pressed while the next card was still being drawn reaches the buttons of the card
        # before, which is done: say so rather than "you do not hold it".
        st.session_state["review_toast"] = (
            "That key reached the message before this one, which is saved already. Press it again for this one."
        )
        return
    shown = st.session_state.get("review_shown", {})
    seconds = time.monotonic() - shown.get(item_id, time.monotonic())
    try:
        if kind == "label" and label is not None:
            service.submit(item_id, label, user.name, seconds=seconds)
        elif kind == "skip":
            service.skip(item_id, user.name)
        else:
            service.undo(user.name)
    except (PulseError, ValueError) as exc:
        st.session_state["review_error"] = str(exc)
        return
    st.session_state["review_last"] = None if kind == "undo" else item_id


def why_label(text: str) -> Why | None:
    """The words the live model leant on; None when it cannot be asked now (the card still works)."""
    try:
        return why(workspace().endpoint, text, max_chars=workspace().settings.max_text_chars)
    except PulseError:
        return None


def flag(item: ReviewItem) -> None:
    """Raise a critical alert for the managers; the item stays claimed, to be labelled as usual."""
    try:
        flag_urgent(workspace().store, item, user.name, notifier=workspace().notifier, role=user.role)
    except PulseError as exc:
        st.session_state["review_error"] = str(exc)
        return
    st.session_state["review_toast"] = "Flagged as urgent: the managers of this group have a critical alert."


if "review_error" in st.session_state:
    st.error(escape_markdown(st.session_state.pop("review_error")))
if "review_toast" in st.session_state:
    st.toast(escape_markdown(st.session_state.pop("review_toast")), icon=":material/priority_high:")

if item is None:
    st.success("Nothing left to review. New check-ins the model is unsure about will appear here.")
    st.button("Undo my last action", shortcut="z", on_click=act, args=("undo", ""))
    st.stop()

st.session_state.setdefault("review_shown", {}).setdefault(item.id, time.monotonic())
show_guess = workspace().settings.review_show_guess  # hidden, the guess cannot anchor the annotator
with st.container(border=True):
    guess = (
        f" · model says {item.predicted_label} "
        + (
            f"({item.confidence:.0%} sure)"
            if item.confidence > 0
            else "but found no words it can read (emoji, symbols or another script only)"
        )
        if show_guess
        else ""
    )
    by = (
        f"written by {item.pseudonym}"
        if item.copies == 1
        else f"×{item.copies} (the same text in {item.copies} check-ins)"
    )
    st.caption(escape_markdown(f"{item.group} · {item.time[:10]} · {by}{guess}"))
    st.text(item.text)  # the message exactly as written: never markdown or HTML
    if item.copies > 1:
        st.caption(escape_markdown(f"Your label applies to all {item.copies} check-ins with this text (one task)."))
    reason = why_label(item.text) if show_guess else None
    if reason is not None and reason.words:
        st.caption(escape_markdown(f"What weighs most for {reason.label} (live model): {', '.join(reason.words)}"))

# The flag's column is wider: its label and icon do not fit the width the one-word buttons need.
cols = st.columns([1] * (len(DECISIONS) + 2) + [1.5])
for col, (label, title, key) in zip(cols, DECISIONS, strict=False):
    col.button(
        escape_markdown(title),
        key=f"b-{label}",
        shortcut=key,
        on_click=act,
        args=("label", item.id, label),
        width="stretch",
    )
cols[-3].button("Skip", shortcut="s", on_click=act, args=("skip", item.id), width="stretch")
cols[-2].button("Undo", shortcut="z", on_click=act, args=("undo", item.id), width="stretch")
cols[-1].button(
    "Flag urgent",
    key="b-urgent",
    shortcut="u",
    on_click=flag,
    args=(item,),
    icon=":material/priority_high:",
    help="Someone may be at risk: alert the managers of this group now (U)",
    width="stretch",
)
