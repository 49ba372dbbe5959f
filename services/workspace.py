"""Building the services of one workspace from the settings (the single factory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.config import Settings
from services.lifecycle.deployment import Deployer, EndpointMover, LocalDeployer
from services.lifecycle.endpoint import Endpoint, LocalEndpoint
from services.lifecycle.registry import model_cache_dir
from services.lifecycle.trainers import LocalTrainer, Trainer
from services.monitoring.alerts import Notifier
from services.store.base import ObjectStore
from services.store.local import LocalStore

if TYPE_CHECKING:
    from services.aws.s3 import S3Store

# What the home page says when PULSE_STORE_SINGLE_WRITER lets a workspace open on a store that may
# not refuse conditional writes (services/aws/probe.py).
SINGLE_WRITER_RISK = (
    "This workspace runs in single-writer mode (PULSE_STORE_SINGLE_WRITER): its store may not refuse "
    "conditional writes, so Pulse cannot stop two people from being handed the same review item, two uploads "
    "from storing a check-in twice, or two admins from deploying at once. Work with one annotator, one "
    "upload and one admin at a time."
)


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
    mover: EndpointMover | None = None  # SageMaker: moves the live model to an endpoint of the other kind


def open_workspace(settings: Settings, *, search_seconds: float = 0.0) -> Workspace:
    """The store the settings name (a folder, or S3 once it has passed the conditional-write probe)
    with the models they name: in this process (`LocalEndpoint`, `LocalTrainer`, the deployment
    pointer), on either store, or on SageMaker (training jobs, the endpoint, its deployer), which
    needs the S3 store."""
    from services.aws.sns import make_notifier

    if settings.models_kind == "sagemaker":
        from services.aws import clients
        from services.aws.deploy import SageMakerDeployer
        from services.aws.endpoint import SageMakerEndpoint
        from services.aws.endpoint_choice import EndpointMover
        from services.aws.training import SageMakerTrainer
        from services.aws.transform import BatchTransform

        s3 = _s3_store(settings)
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
            EndpointMover(sm, s3, settings),
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
    if settings.store_kind == "s3":
        return _s3_store(settings)
    return LocalStore(settings.workspace)


def _s3_store(settings: Settings) -> S3Store:
    """The settings' bucket and prefix, once the store has shown it refuses what it must refuse."""
    from services.aws import clients
    from services.aws.probe import check_conditional_writes
    from services.aws.s3 import S3Store

    s3 = S3Store(clients.s3_client(settings), settings.bucket, settings.prefix)
    check_conditional_writes(s3, single_writer=settings.store_single_writer)
    return s3
