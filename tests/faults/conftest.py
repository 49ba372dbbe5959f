"""The fault matrix for the README's results page, written from the outcomes of this run's tests
(artifacts/results/faults.json), not by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.benchmarks.results import write_result

_ROWS: list[list[Any]] = []
WHAT = {
    "throttle": "throttling (503 SlowDown)",
    "500": "server error (500 InternalError)",
    "reset": "connection reset",
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not hasattr(item, "callspec"):
        return
    params = item.callspec.params
    lasting = "lasting" in item.name
    fault = WHAT.get(str(params.get("kind")), str(params.get("kind")))
    when = f"from PutObject #{params['start']}, outlasting retries" if lasting else "one PutObject, mid-ingest"
    expected = (
        "stopped with a StoreError; re-run: state identical to a clean run"
        if lasting
        else ("retried; state identical to a clean run")
    )
    _ROWS.append(["ingest (S3)", fault, when, expected if report.passed else f"FAILED: {report.outcome}"])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _ROWS:
        write_result(
            "faults",
            "Faults injected in ingest on S3 (moto's server, botocore before-send hooks)",
            ["operation", "fault", "when", "outcome"],
            sorted(_ROWS),
            [
                "State compared: scored rows (id, label, model version), review items, the review index, alerts.",
                "Labeling under S3 outages is covered in tests/adapters/test_labeling_s3.py; dataset building and a "
                "killed ingest process are not in this matrix yet.",
            ],
        )
