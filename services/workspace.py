"""Building the services of one workspace from the settings (the single factory)."""

from __future__ import annotations

from dataclasses import dataclass

from services.config import Settings
from services.lifecycle.deployment import Deployer, LocalDeployer
from services.lifecycle.endpoint import Endpoint, LocalEndpoint
from services.lifecycle.registry import model_cache_dir
from services.lifecycle.trainers import LocalTrainer, Trainer
from services.monitoring.alerts import Notifier
from services.store.base import ObjectStore
from services.store.local import LocalStore


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


def open_workspace(settings: Settings, *, search_seconds: float = 0.0) -> Workspace:
    """The local backend by default; with `backend = "aws"`, S3 + SageMaker training, endpoint and
    deployment. (The local trainer also works against an S3 store.)"""
    from services.aws.sns import make_notifier

    if settings.backend == "aws":
        from services.aws import clients
        from services.aws.deploy import SageMakerDeployer
        from services.aws.endpoint import SageMakerEndpoint
        from services.aws.s3 import S3Store
        from services.aws.training import SageMakerTrainer
        from services.aws.transform import BatchTransform

        s3 = S3Store(clients.s3_client(settings), settings.bucket, settings.prefix)
        sm, runtime = clients.sagemaker_client(settings), clients.sagemaker_client(settings, "sagemaker-runtime")
        return Workspace(
            settings,
            s3,
            SageMakerEndpoint(
                runtime,
                settings.sagemaker_endpoint_name,
                s3,
                transform=BatchTransform(sm, s3, settings),
                bulk_rows=settings.sagemaker_batch_transform_rows,
                name_prefix=settings.sagemaker_name_prefix,
            ),
            SageMakerTrainer(sm, clients.s3_client(settings), s3, settings),
            SageMakerDeployer(sm, s3, settings),
            make_notifier(settings),
        )
    store = make_store(settings)
    endpoint = LocalEndpoint(store, model_cache_dir(store), max_chars=settings.max_text_chars)
    return Workspace(
        settings,
        store,
        endpoint,
        LocalTrainer(store, search_seconds=search_seconds),
        LocalDeployer(),
        make_notifier(settings),
    )


def make_store(settings: Settings) -> ObjectStore:
    """The store the settings ask for: a local folder or an S3 bucket/prefix."""
    if settings.backend == "aws":
        from services.aws import clients
        from services.aws.s3 import S3Store

        return S3Store(clients.s3_client(settings), settings.bucket, settings.prefix)
    return LocalStore(settings.workspace)
