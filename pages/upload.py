"""Upload check-ins: the same ingest as `python -m services.cli ingest`, from the browser."""

import streamlit as st

from dashboard.auth import require_page
from dashboard.components import escape_markdown
from dashboard.deps import show_error, workspace
from services.checkins.exports import csv_bytes, read_rejected
from services.checkins.ingest import ingest
from services.errors import InvalidUpload, PulseError
from services.monitoring.threshold import effective_threshold

user = require_page("upload")

st.title("Upload check-ins")
ws = workspace()
threshold = effective_threshold(ws.store, ws.settings)  # an admin may have changed it on the health page
st.markdown(
    "A CSV, JSON lines or Parquet file with the columns **participant**, **group**, **time** and **text** "
    "(an **id** column is optional; other columns are kept as they are). Each row is scored by the live "
    f"model; rows below confidence {threshold:.2f} go to the review queue. Rows that "
    "cannot be read are set aside with the reason, never dropped. Uploading the same file twice adds nothing."
)
upload = st.file_uploader(
    "Check-ins file",
    type=["csv", "tsv", "txt", "jsonl", "ndjson", "json", "parquet"],
    max_upload_size=ws.settings.max_upload_mb,
)
if upload is not None and st.button("Score and add to the workspace", type="primary"):
    bar = st.progress(0.0, text="Scoring…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scoring… {done:,} of {total:,}")

    try:
        report = ingest(
            ws.store,
            ws.endpoint,
            upload.getvalue(),
            upload.name,
            threshold=threshold,
            max_chars=ws.settings.max_text_chars,
            progress=progress,
            notifier=ws.notifier,
        )
    except InvalidUpload as exc:
        bar.empty()
        show_error(exc, "fix the file and upload it again")
        st.stop()
    except PulseError as exc:
        bar.empty()
        show_error(exc)
        st.stop()
    bar.empty()
    if report.repeated:
        st.info(f"This file was already ingested: {escape_markdown(report.summary())}")
    else:
        st.success(escape_markdown(report.summary()))
    st.session_state["last_ingest"] = report.batch
    if report.quarantine_key:
        rejected = read_rejected(ws.store, report.quarantine_key)
        st.subheader(f"{len(rejected):,} rows set aside")
        st.dataframe(rejected[["row", "reason"]], hide_index=True, width="stretch")
        st.download_button(
            "Download rejected rows (CSV)",
            data=csv_bytes(rejected),
            file_name=f"rejected-{report.batch}.csv",
            mime="text/csv",
            icon=":material/download:",
        )
