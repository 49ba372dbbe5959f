"""Building the services of one workspace from the settings (the single factory)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.alerts import Notifier, make_notifier
from services.config import Settings
from services.deployment import Deployer, LocalDeployer
from services.endpoint import Endpoint, LocalEndpoint
from services.storage import ObjectStore, S3Store, make_store, s3_client
from services.trainers import Trainer
from services.training import LocalFastTextTrainer


@dataclass(frozen=True)
class Workspace:
    """The store, endpoint, trainer and deployer that the settings point at (and where new alerts
    are published, if anywhere)."""

    settings: Settings
    store: ObjectStore
    endpoint: Endpoint
    trainer: Trainer
    deployer: Deployer
    notifier: Notifier | None = None


def model_cache_dir(store: ObjectStore) -> Path:
    """Where downloaded model artifacts are unpacked: one folder per store, outside the store."""
    tag = hashlib.sha256(store.describe().encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "pulse-models" / tag


def open_workspace(settings: Settings, *, search_seconds: float = 0.0) -> Workspace:
    """The local backend by default; with `backend = "aws"`, S3 + SageMaker training, endpoint and
    deployment. (The local trainer also works against an S3 store.)"""
    store = make_store(settings)
    if settings.backend == "aws" and isinstance(store, S3Store):
        from services.sagemaker import SageMakerDeployer, SageMakerEndpoint, SageMakerTrainer, sagemaker_client

        sm, runtime = sagemaker_client(settings), sagemaker_client(settings, "sagemaker-runtime")
        return Workspace(
            settings,
            store,
            SageMakerEndpoint(runtime, settings.sagemaker_endpoint_name, store),
            SageMakerTrainer(sm, s3_client(settings), store, settings),
            SageMakerDeployer(sm, store, settings),
            make_notifier(settings),
        )
    endpoint = LocalEndpoint(store, model_cache_dir(store), max_chars=settings.max_text_chars)
    return Workspace(
        settings,
        store,
        endpoint,
        LocalFastTextTrainer(store, search_seconds=search_seconds),
        LocalDeployer(),
        make_notifier(settings),
    )
