"""Labels & datasets: what the human labels add up to, what the next dataset version would hold,
what the live model has not learnt yet, how well annotators agree, and building a dataset version."""

import pandas as pd
import streamlit as st

from dashboard.admin_charts import class_balance_figure, label_bars
from dashboard.admin_views import dataset_preview, dataset_versions, label_data, message_text, utc_minute
from dashboard.auth import require_page
from dashboard.components import escape_markdown
from dashboard.deps import settings, show_error, workspace
from services.access import audit
from services.access.privacy import delete_participant, unfinished_deletions
from services.access.pseudonyms import configured_key
from services.errors import DatasetError, PulseError
from services.lifecycle.datasets import build_dataset
from services.model.prediction import LABELS

user = require_page("data")


st.title("Labels & datasets")
try:
    data = label_data()
except PulseError as exc:
    show_error(exc, "check the workspace settings")
    st.stop()
summary, since, agree = data.summary, data.since, data.agreement

cols = st.columns(4)
cols[0].metric("Labels that count", f"{summary.labels:,}", help="Labels withdrawn with Undo are left out")
cols[1].metric("Messages labelled", f"{summary.items:,}")
cols[2].metric("New since the live model", f"{since.new_labels:,}", help="Labels its training data did not include")
cols[3].metric(
    "Agreement (Cohen's kappa)",
    "—" if agree.kappa is None else f"{agree.kappa:.2f}",
    help="1 = annotators always agree, 0 = no better than chance",
)

# --- labels per class and per annotator
st.subheader("Labels per class and per annotator")
if summary.labels == 0:
    st.info("No labels yet. Annotators label the messages the model is unsure about on the Review queue page.")
else:
    st.caption(
        f"{summary.items:,} messages carry {summary.labels:,} labels; {summary.retracted:,} "
        f"{'label was undone and does' if summary.retracted == 1 else 'labels were undone and do'} not count. When "
        "labels of a message differ, the latest final label wins, else the latest one — the "
        f"rule a dataset build applies. {summary.gold_items:,} messages are held out as gold (evaluated on, never "
        "trained on)."
    )
    st.plotly_chart(label_bars(summary.per_class, summary.per_annotator), width="stretch")
    left, right = st.columns([2, 3])
    per_class = pd.DataFrame({"label": list(summary.per_class), "messages": list(summary.per_class.values())})
    left.dataframe(per_class, hide_index=True, width="stretch")
    per_person = pd.DataFrame.from_dict(summary.per_annotator, orient="index").rename_axis("annotator")
    per_person["total"] = per_person.sum(axis=1)
    right.dataframe(per_person.reset_index(), hide_index=True, width="stretch")

# --- what the live model has not learnt yet
st.subheader("What the live model has not learnt yet")
if since.version is None:
    st.info("No model is deployed yet, so every label is new.")
elif since.from_manifest:
    st.markdown(
        f"The live model {escape_markdown(since.version)} was trained on dataset "
        f"{escape_markdown(since.dataset)}, built "
        f"{utc_minute(since.dataset_created_at)}. Since then **{since.new_labels:,} labels** on "
        f"{since.new_items:,} messages were added"
        + (f", and {since.withdrawn:,} labels it used were undone" if since.withdrawn else "")
        + "."
    )
else:
    st.markdown(
        f"The live model {escape_markdown(since.version)} was not trained on a dataset version (it learnt from "
        f"the shipped corpus only; registered {utc_minute(since.dataset_created_at)}), so all "
        f"**{since.new_labels:,} labels** are new to it."
    )
if since.new_labels:
    st.dataframe(
        pd.DataFrame([{"label": k, "new labels": v} for k, v in since.new_per_class.items()]),
        hide_index=True,
    )

# --- the next dataset version
st.subheader("Next dataset version")
preview = dataset_preview()
if preview.problem:
    st.error(f"A dataset built now would be refused: {escape_markdown(preview.problem)}.")
else:
    balance = preview.class_balance()
    total = sum(balance.values()) or 1
    st.caption(
        f"What **Build dataset version** would write now: the shipped corpus plus every human label, de-duplicated, "
        f"conflicts resolved, split 80/20 stratified. {preview.sources.get('human', 0):,} rows from people, "
        f"{preview.sources.get('base', 0):,} from the corpus"
        + escape_markdown("".join(f"; {n:,} dropped ({reason})" for reason, n in preview.dropped.items()))
        + "."
    )
    left, right = st.columns([2, 3])
    table = pd.DataFrame(
        {
            "label": list(LABELS),
            "train": [preview.counts["train"].get(c, 0) for c in LABELS],
            "validation": [preview.counts["validation"].get(c, 0) for c in LABELS],
            "share": [f"{balance[c] / total:.0%}" for c in LABELS],
        }
    )
    rows = st.column_config.NumberColumn(format="localized")
    left.dataframe(table, hide_index=True, width="stretch", column_config={"train": rows, "validation": rows})
    right.plotly_chart(class_balance_figure(preview.counts["train"], data.live_training), width="stretch")

if st.button("Build dataset version", type="primary", icon=":material/dataset:"):
    with st.spinner("Building the dataset version…"):
        try:
            built = build_dataset(workspace().store, by=user.name)
        except DatasetError as exc:
            show_error(exc, "label a few messages of every class on the Review queue page, then build again")
        except PulseError as exc:
            show_error(exc, "nothing was changed; try again, or check the workspace settings")
        else:
            audit.try_record(
                workspace().store,
                user.name,
                user.role,
                "dataset_built",
                built.version,
                audit.rows_per_split(built.counts),
            )
            st.session_state["admin_data_built"] = built.version
            conflicts = built.conflicts
            st.session_state["admin_data_built_detail"] = {
                "counts": built.counts,
                "conflicts": built.conflicts,
                "sources": built.sources,
                # read once at the build, not on every rerun while the result is on screen
                "texts": {
                    str(c["item_id"]): message_text(workspace().store, str(c["item_id"])) for c in built.conflicts
                },
            }
built_version = st.session_state.get("admin_data_built")
detail = st.session_state.get("admin_data_built_detail")
if built_version and isinstance(detail, dict):
    counts, sources, conflicts = detail["counts"], detail["sources"], detail["conflicts"]
    train, validation = (sum(counts[split].values()) for split in ("train", "validation"))
    people, corpus = sources.get("human", 0), sources.get("base", 0)
    st.success(
        f"Built dataset version {escape_markdown(built_version)}: {train + validation:,} messages, "
        f"{train:,} to train on and {validation:,} to validate. Train on it from the Training page."
    )
    st.markdown(
        f"{people:,} of the messages carry a label from people and {corpus:,} come from the shipped corpus "
        "(a label from people replaces the corpus's on the same text). "
        + (
            f"{len(conflicts):,} {'conflict was' if len(conflicts) == 1 else 'conflicts were'} settled: two "
            "annotators gave one message different labels, or two messages with the same text were labelled "
            "differently. The table says which label was kept and why."
            if conflicts
            else "No labels disagreed."
        )
    )
    number = st.column_config.NumberColumn(format="localized")
    split_table = pd.DataFrame(counts).rename_axis("label").reset_index()
    st.dataframe(split_table, hide_index=True, column_config={"train": number, "validation": number})
    if conflicts:
        texts = detail.get("texts", {})
        table = pd.DataFrame(
            [
                {
                    "message": texts.get(str(c["item_id"]), ""),
                    "conflict": c.get("kind", "labels differ"),
                    "who labelled what": c.get("labels")
                    if isinstance(c.get("labels"), str)
                    else ", ".join(c["labels"]),
                    "kept": c.get("chosen", ""),
                    "why": c.get("why", ""),
                }
                for c in conflicts
            ]
        )
        wide = st.column_config.TextColumn(width="large")
        st.dataframe(table, hide_index=True, width="stretch", column_config={"message": wide})

versions = dataset_versions()
if not versions.empty:
    with st.expander(f"Dataset versions ({len(versions)})"):
        st.dataframe(versions, hide_index=True, width="stretch")

# --- agreement
st.subheader("Agreement between annotators")
pairs = summary.double_labelled
if agree.kappa is None:
    st.info(
        "No message has been labelled by two people yet. A small share of the review queue is labelled twice "
        "on purpose; kappa appears here once the first of those has both labels."
    )
else:
    st.markdown(
        f"**Cohen's kappa {agree.kappa:.2f}: {escape_markdown(agree.reading)}**, over {pairs:,} messages "
        "labelled by two people (their first labels)."
    )
st.caption(
    "Kappa compares how often two annotators chose the same label with how often they would agree by chance, "
    "given how often each uses each label: 1 means they always agree, 0 no better than chance, below 0 worse than "
    "chance. Above 0.6 is usually taken as substantial. A low value means the labelling guidance is unclear or "
    "the messages are truly ambiguous — read the disagreements below before training on them."
)
if agree.disagreements:
    st.markdown(f"**{len(agree.disagreements):,} disagreements to resolve**")
    table = pd.DataFrame(
        [
            {
                "item": row["item_id"],
                "message": row["text"],
                "labels": ", ".join(row["labels"]),
                "annotators": ", ".join(row["annotators"]),
                "counts as": row["counts_as"],
            }
            for row in agree.disagreements
        ]
    )
    st.dataframe(
        table[["item", "labels", "annotators", "counts as", "message"]],
        hide_index=True,
        width="stretch",
        column_config={
            "item": st.column_config.TextColumn(width="small"),
            "message": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption("“Counts as” is the label a dataset build uses now. A reviewer's final label on the message settles it.")
elif agree.kappa is not None:
    st.success("No disagreements to resolve.")

st.subheader("Delete a participant's data")
with st.expander("Remove everything one participant wrote, everywhere in the workspace"):
    st.caption(
        "Their check-ins, review items, alerts, rejected rows and the original uploads holding their rows are "
        "deleted; labels of their messages keep the decision but lose the text; dataset versions holding their "
        "messages are rebuilt without them. Models already trained on them are listed: retrain and retire them. "
        "The audit log records the deletion under a pseudonym. This cannot be undone."
    )
    try:
        stopped = unfinished_deletions(workspace().store)
    except PulseError:
        stopped = []
    if stopped:
        st.warning(
            f"{len(stopped):,} deletion(s) stopped half-way ({escape_markdown(', '.join(stopped))} in the audit "
            "log): delete the same participant again to finish — what was found so far is kept."
        )
    with st.form("delete-participant", clear_on_submit=True):
        who = st.text_input("Participant id")
        again = st.text_input("Type the participant id again to confirm")
        confirmed = st.form_submit_button("Delete their data", type="primary", icon=":material/delete_forever:")
    if confirmed:
        if not who.strip() or who != again:
            st.error("The two ids differ or are empty: nothing was deleted.")
        else:
            try:
                with st.spinner("Deleting…"):
                    done = delete_participant(
                        workspace().store,
                        who,
                        by=user.name,
                        role=user.role,
                        pseudonym_key=configured_key(settings()),
                    )
            except PulseError as exc:
                show_error(exc, "nothing more was deleted; run it again to finish (it is safe to repeat)")
            else:
                st.cache_data.clear()  # cached summaries may hold their rows
                if not done.found_anything:
                    st.info("Nothing of that participant was found (already deleted, or a different id).")
                else:
                    st.success(
                        f"Deleted {done.checkins:,} check-ins, {done.review_items:,} review items, {done.alerts:,} "
                        f"alerts, {done.uploads_deleted:,} original uploads and {done.quarantined_rows:,} rejected "
                        f"rows; {done.labels_scrubbed:,} labels lost their text; {done.dataset_lines:,} dataset "
                        f"lines removed. Recorded in the audit log as {escape_markdown(done.pseudonym)}"
                        + (" (a stopped deletion, now finished)." if done.resumed else ".")
                    )
                    if done.models_trained_on_them:
                        st.warning(
                            "Trained on their messages (retrain, then retire these versions): "
                            + escape_markdown(", ".join(done.models_trained_on_them))
                        )
