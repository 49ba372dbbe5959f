"""Upload check-ins: the same ingest as `python -m services.cli ingest`, from the browser."""

import pandas as pd
import streamlit as st

from dashboard.auth import require_page
from dashboard.components import escape_markdown
from dashboard.deps import show_error, workspace
from services.checkins.exports import csv_bytes, read_rejected, sample_csv
from services.checkins.ingest import IngestReport, ingest
from services.checkins.intake import intake_status
from services.checkins.records import SUFFIXES
from services.checkins.times import DAY_FIRST, EARLIEST, MONTH_FIRST
from services.checkins.upload import FUTURE_TOLERANCE
from services.errors import InvalidUpload, PulseError
from services.model.prediction import LABELS
from services.monitoring.threshold import effective_threshold
from services.store.base import ObjectStore

user = require_page("upload")

st.title("Upload check-ins")
ws = workspace()
threshold = effective_threshold(ws.store, ws.settings)  # an admin may have changed it on the health page
intro, sample = st.columns([4, 1], vertical_alignment="top")
intro.markdown(
    "A CSV, JSON lines or Parquet file with the columns **participant**, **group**, **time** and **text** "
    "(an **id** column is optional; other columns are kept as they are). Each row is scored by the live "
    f"model; rows below confidence {threshold:.2f} go to the review queue. Rows that "
    "cannot be read are set aside with the reason, never dropped. Uploading the same file twice adds nothing."
)
intro.markdown(
    "**Times** are read as ISO 8601 (`2026-12-01T09:12:00+01:00`, `2026-12-01 17:40`) or as Unix seconds. "
    "**A time without a zone is read as UTC**: add the offset (`+01:00`) for local times. A time names its year "
    "in four digits (`now` or `today` are set aside, so the same row is the same check-in whenever it is read); "
    f"times before {int(EARLIEST.year)} or more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes in the "
    "future are set aside, and so are dates like 03/04/2026 unless you say below which number is the day."
)
sample.download_button(
    "Sample CSV",
    data=sample_csv(),
    file_name="pulse-sample-checkins.csv",
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
    help="Five made-up check-ins in the upload format, times with and without a zone",
)
upload = st.file_uploader(
    "Check-ins file",
    type=[suffix.removeprefix(".") for suffix in SUFFIXES],
    max_upload_size=ws.settings.max_upload_mb,
)
DATE_ORDERS = {
    None: "not allowed: set aside (write dates as 2026-04-03)",
    DAY_FIRST: "day first: 03/04/2026 is 3 April",
    MONTH_FIRST: "month first: 03/04/2026 is March 4",
}
time_format = st.selectbox(
    "Dates written like 03/04/2026", list(DATE_ORDERS), format_func=DATE_ORDERS.__getitem__, width=420
)


def rejected_rows(key: str | None, batch: str) -> None:
    """The rows set aside, with their reasons, and a download of them (never the store's key)."""
    if not key:
        return
    rejected = read_rejected(ws.store, key)
    st.subheader(f"{len(rejected):,} row{'' if len(rejected) == 1 else 's'} set aside")
    st.caption("Row numbers count data rows from 1 (the header is not counted). Fix them and upload them again.")
    st.dataframe(
        rejected, hide_index=True, width="stretch", column_config={"reason": st.column_config.TextColumn(width="large")}
    )
    st.download_button(
        "Download rejected rows (CSV)",
        data=csv_bytes(rejected),
        file_name=f"rejected-{batch}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
    )


def result_panel(report: IngestReport) -> None:
    """What the upload did: every row of the file accounted for, how the accepted ones were read."""
    if report.repeated:
        st.info(
            escape_markdown(f"{report.filename} was already ingested (batch {report.batch}): nothing was added again."),
            icon=":material/info:",
        )
    else:
        st.success(
            escape_markdown(
                f"{report.filename}: {report.accepted:,} check-in{'' if report.accepted == 1 else 's'} added, "
                f"scored by {report.model_version}."
            ),
            icon=":material/check_circle:",
        )
    cols = st.columns(5)
    cols[0].metric("Rows in the file", f"{report.total_rows:,}")
    cols[1].metric("Accepted", f"{report.accepted:,}")
    cols[2].metric(
        "Already in the workspace",
        f"{report.already_present:,}",
        help="Same check-in as a stored one (same id, or same participant, time and text), from any file or day",
    )
    cols[3].metric("Set aside", f"{report.rejected:,}", help="Rows that could not be read: reasons below")
    cols[4].metric(
        "Sent to review",
        f"{report.unrecognized:,}",
        help=f"Accepted rows the model was less than {report.threshold:.0%} sure of: annotators label them",
    )
    if report.labels:
        total = max(sum(report.labels.values()), 1)
        counts = [report.labels.get(label, 0) for label in LABELS]
        shares = pd.DataFrame({"label": list(LABELS), "check-ins": counts, "share": [n / total for n in counts]})
        st.caption("How the live model read the accepted check-ins")
        st.dataframe(
            shares,
            hide_index=True,
            width=640,
            column_config={
                "share": st.column_config.ProgressColumn("share", format="percent", min_value=0, max_value=1)
            },
        )
    notes = []
    if report.alerts:
        notes.append(f"{report.alerts:,} new alert{'' if report.alerts == 1 else 's'} for the managers (see Alerts)")
    if report.dates:
        notes.append(f"check-ins from {report.dates[0]} to {report.dates[-1]} (UTC days)")
    if notes:
        line = "; ".join(notes)
        st.caption(escape_markdown(line[:1].upper() + line[1:] + "."))
    rejected_rows(report.quarantine_key, report.batch)


if upload is not None and st.button("Score and add to the workspace", type="primary"):
    bar = st.progress(0.0, text="Scoring…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scoring… {done:,} of {total:,}")

    st.session_state.pop("upload_report", None)
    try:
        st.session_state["upload_report"] = ingest(
            ws.store,
            ws.endpoint,
            upload.getvalue(),
            upload.name,
            threshold=threshold,
            max_chars=ws.settings.max_text_chars,
            progress=progress,
            notifier=ws.notifier,
            time_format=time_format,
        )
    except InvalidUpload as exc:
        bar.empty()
        show_error(InvalidUpload(exc.message), "fix the file and upload it again")  # the rows, not a store key
        rejected_rows(exc.rejected_key, "upload")
        st.stop()
    except PulseError as exc:
        bar.empty()
        show_error(exc)
        st.stop()
    bar.empty()

report = st.session_state.get("upload_report")
if isinstance(report, IngestReport):
    result_panel(report)


@st.cache_data(ttl=15, show_spinner=False)
def intake_table(_store: ObjectStore, where: str) -> pd.DataFrame:
    """The watchers' markers of the workspace at `where` (what the cache is keyed on)."""
    return intake_status(_store)


st.subheader("Automatic intake")
seen = intake_table(ws.store, ws.store.describe())
if seen.empty:
    st.caption(
        "No watcher has seen a file yet. To ingest every file dropped into a folder or an S3 prefix, run "
        "`python -m services.cli ingest --watch FOLDER` (or `--watch s3://bucket/prefix/ --once` on a schedule): "
        "each file is ingested once, and listed here with what became of it."
    )
else:
    states = seen["state"].value_counts()
    st.caption(
        f"Files the watchers have seen, newest first: {int(states.get('done', 0)):,} done, "
        f"{int(states.get('pending', 0)):,} pending (being read, or waiting for the next pass), "
        f"{int(states.get('failed', 0)):,} failed. A failed file is not read again until it changes."
    )
    st.dataframe(
        seen.drop(columns="inbox") if seen["inbox"].nunique() <= 1 else seen,
        hide_index=True,
        width="stretch",
        column_config={
            "reason": st.column_config.TextColumn(width="large"),
            "updated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss z"),
        },
    )
