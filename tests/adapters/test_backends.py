"""The parts of the backend chosen apart: an S3 store (moto's server) with the models in this process
(`PULSE_STORE=s3`, `PULSE_MODELS=local`), as several app replicas on one bucket run it: the bootstrap
model is registered in S3 and scored in-process, an upload is ingested, and no SageMaker call is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.aws.s3 import S3Store
from services.checkins.ingest import ingest
from services.cli import main as cli
from services.config import load_settings
from services.lifecycle.deployment import require_current
from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.trainers import LocalTrainer
from services.workspace import open_workspace
from tests.benchmarks.datasets import airline_checkins


def test_an_s3_store_with_models_in_process(
    s3_client: Any, bucket: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "PULSE_STORE": "s3",
        "PULSE_MODELS": "local",
        "PULSE_BUCKET": bucket,
        "PULSE_PREFIX": "replicas",
        "PULSE_S3_ENDPOINT_URL": moto_endpoint,
        "PULSE_SAGEMAKER_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: a SageMaker call would fail
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(tmp_path / "no-secrets.toml")
    ws = open_workspace(settings)
    assert isinstance(ws.store, S3Store) and isinstance(ws.endpoint, LocalEndpoint)
    assert isinstance(ws.trainer, LocalTrainer) and ws.deployer.name == "local"
    assert cli(["bootstrap", "--by", "t"]) == 0
    version = require_current(ws.store).version
    assert any(k.startswith(f"models/{version}/") for k in ws.store.list("models/"))
    frame = pd.DataFrame(airline_checkins(300, seed=5))
    report = ingest(ws.store, ws.endpoint, frame.to_csv(index=False).encode(), "up.csv", threshold=0.6)
    assert report.accepted == 300 and report.model_version == version
    second = open_workspace(settings)  # another replica on the same bucket sees the same model
    assert second.endpoint.version() == version
