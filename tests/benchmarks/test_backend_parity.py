"""The same model on both backends: the bootstrap model of each (local; aws with the Pulse model image;
aws with BlazingText, the baseline before the image), then one upload of 20,000 airline check-ins
scored by each backend's endpoint, in one run: the live family, its gold-set macro-F1 and the share of
the upload sent to review at the threshold in force. The aws rows run against moto's server with the
SageMaker stand-in in its own process (its endpoint serves through the image's serving code); the
"Batch Transform" row scores the whole upload in one transform job instead of endpoint calls.

`PULSE_BENCH_PARITY_ROWS` sets the size of the upload (default 20,000)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.aws.standin import MODEL_IMAGE, REGION, ROLE_ARN, aws_env, started
from services.checkins.ingest import ingest
from services.cli import _bootstrap_deploy
from services.config import load_settings
from services.lifecycle.deployment import require_current
from services.lifecycle.registry import load_card
from services.lifecycle.training import train_bootstrap
from services.monitoring.threshold import effective_threshold
from services.workspace import open_workspace
from tests.benchmarks.datasets import airline_checkins
from tests.conftest import free_port

pytestmark = pytest.mark.benchmark

N = int(os.environ.get("PULSE_BENCH_PARITY_ROWS", "20000"))


@pytest.fixture(scope="module")
def standin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with started(free_port(), "pulse-parity", tmp_path_factory.mktemp("standin") / "standin.log") as url:
        yield url


def _run(settings: Any, upload: bytes) -> dict[str, Any]:
    ws = open_workspace(settings)
    started_at = time.perf_counter()
    train_bootstrap(ws.store, by="benchmark", **_bootstrap_deploy(ws))
    card = load_card(ws.store, require_current(ws.store).version)
    report = ingest(ws.store, ws.endpoint, upload, "airline.csv", threshold=effective_threshold(ws.store, ws.settings))
    return {
        "family": card.family,
        "f1": card.metrics["macro_f1"],
        "review": report.unrecognized / max(report.accepted, 1),
        "accepted": report.accepted,
        "seconds": time.perf_counter() - started_at,
    }


def test_the_aws_backend_runs_the_model_the_local_backend_picks(
    standin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in aws_env(standin_url, "pulse-parity").items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    frame = pd.DataFrame(airline_checkins(N, seed=1))
    upload = frame.to_csv(index=False).encode()
    secrets = tmp_path / "no-secrets.toml"
    aws = {
        "backend": "aws",
        "bucket": "pulse-parity",
        "aws_endpoint_url": standin_url,
        "aws_region": REGION,
        "sagemaker_role_arn": ROLE_ARN,
    }
    one_job = {"sagemaker_batch_transform_rows": 1}  # every upload in one transform job
    rows = {
        "local": _run(load_settings(secrets, workspace=tmp_path / "local"), upload),
        "aws, Pulse image": _run(load_settings(secrets, **aws, prefix="im", sagemaker_model_image=MODEL_IMAGE), upload),
        "aws, image, Batch Transform": _run(
            load_settings(secrets, **aws, prefix="tr", sagemaker_model_image=MODEL_IMAGE, **one_job),
            upload,
        ),
        "aws, BlazingText (before)": _run(load_settings(secrets, **aws, prefix="bt", sagemaker_model_image=""), upload),
    }
    print(f"\nbootstrap model and {N:,} airline check-ins per backend (one run, review share at the threshold)")
    print(f"{'backend':<28} {'family':<9} {'gold F1':>7} {'review':>7} {'vs local':>9} {'seconds':>8}")
    local = rows["local"]["review"]
    for name, row in rows.items():
        print(
            f"{name:<28} {row['family']:<9} {row['f1']:>7.3f} {row['review']:>7.1%} "
            f"{100 * (row['review'] - local):>+8.1f}p {row['seconds']:>8.1f}"
        )
    assert all(row["accepted"] == N for row in rows.values())
    assert rows["aws, Pulse image"]["family"] == rows["local"]["family"]
    assert rows["aws, image, Batch Transform"]["review"] == rows["aws, Pulse image"]["review"]
