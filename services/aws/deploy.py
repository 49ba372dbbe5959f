"""Deploying to a SageMaker real-time endpoint: CreateModel, CreateEndpointConfig, then CreateEndpoint
or UpdateEndpoint, waiting for InService; a failed update puts the previous endpoint config back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.aws.endpoint_choice import EndpointChoice, endpoint_choice
from services.aws.errors import Clock, Sleep, already_exists, aws_errors, explain, not_found, resource_name
from services.aws.training import blazingtext_image
from services.errors import DeployFailed, ModelUnavailable, PulseError
from services.lifecycle.registry import ARTIFACT, load_card
from services.store import keys

if TYPE_CHECKING:
    from services.aws.s3 import S3Store
    from services.config import Settings

log = logging.getLogger(__name__)


ENDPOINT_BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


class SageMakerDeployer:
    """Serves a registered version from a SageMaker real-time endpoint, in the Pulse model image
    (either family) when PULSE_SAGEMAKER_MODEL_IMAGE is set, else in BlazingText's (fastText).

    CreateModel (reused if it exists) → CreateEndpointConfig → CreateEndpoint or UpdateEndpoint,
    then waits for InService. A failed update is rolled back to the endpoint's previous config.
    """

    name = "sagemaker"

    def __init__(
        self,
        sm_client: Any,
        store: S3Store,
        settings: Settings,
        *,
        poll_seconds: float = 15.0,
        timeout_seconds: float = 1800,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sm = sm_client
        self.store = store
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.events: list[str] = []  # what the last activate did, rollbacks included
        self._choice: EndpointChoice | None = None  # during an activation

    @property
    def endpoint_name(self) -> str:
        return self._chosen().name

    def _chosen(self) -> EndpointChoice:
        """Where and of which kind the endpoint is: read once for an activation, else each time."""
        return self._choice or endpoint_choice(self.store, self.settings)

    def artifact_uri(self, version: str) -> str:
        """The registry artifact of `version` on S3."""
        return f"s3://{self.store.bucket}/{self.store.prefix}{keys.model_key(version)}"

    def _record(self, line: str) -> None:
        log.info("%s", line)
        self.events.append(line)

    def activate(self, version: str, previous: str | None) -> dict[str, str]:
        """Serve `version` from the endpoint; block until InService. On failure put the previous
        endpoint config back (if there was one) and raise `DeployFailed` with the reason."""
        self.events = []
        check_deployable(self.store, self.settings, version)
        self._choice = endpoint_choice(self.store, self.settings)
        try:
            return self._activate(version, previous)
        finally:
            self._choice = None

    def _activate(self, version: str, previous: str | None) -> dict[str, str]:
        model_name, config_name, image = self._plan(version)
        # Look at the endpoint first, so a busy or broken one leaves nothing half created.
        existing = self._describe()
        previous_config = self._previous_config(existing)
        self._ensure_model(model_name, image, self.artifact_uri(version), version)
        self._create_config(config_name, model_name, version)
        self._point_endpoint(existing, config_name, previous_config, version)
        reason = self._wait(config_name, previous_config)
        if reason is None:
            self._record(f"endpoint {self.endpoint_name} serves {version} ({config_name})")
            return {
                "model_name": model_name,
                "endpoint_config_name": config_name,
                "endpoint_name": self.endpoint_name,
                "previous_endpoint_config": previous_config,
                "previous_version": previous or "",
            }
        self._record(f"deployment of {version} failed: {reason}")
        undone = _undo_update(self, previous_config)
        raise DeployFailed(f"deploying {version} to endpoint {self.endpoint_name} failed: {reason}. {undone}")

    def _plan(self, version: str) -> tuple[str, str, str]:
        """The model and endpoint config names for `version`, and the image that serves it."""
        prefix = self.settings.sagemaker_name_prefix
        try:
            model_name = resource_name(prefix, version)
            config_name = resource_name(prefix, version, suffix=self.now().strftime("%y%m%d%H%M%S"))
        except ValueError as exc:
            raise DeployFailed(str(exc)) from None
        return model_name, config_name, self.settings.sagemaker_model_image or self._blazingtext()

    def _blazingtext(self) -> str:
        region = str(self.sm.meta.region_name or self.settings.aws_region)
        try:
            return blazingtext_image(region)
        except (ValueError, LookupError) as exc:
            raise DeployFailed(f"no BlazingText image for region {region}: {str(exc).split('. ')[0]}") from None

    def _previous_config(self, existing: dict[str, Any] | None) -> str:
        """The endpoint config serving now ("" without an endpoint); a busy or broken endpoint refuses."""
        if existing is None:
            return ""
        status = str(existing.get("EndpointStatus", ""))
        if status in ENDPOINT_BUSY:
            raise DeployFailed(f"endpoint {self.endpoint_name} is busy ({status}); deploy again when it is InService")
        if status != "InService":
            raise DeployFailed(
                f"endpoint {self.endpoint_name} is in status {status} and cannot be updated: delete it "
                "(aws sagemaker delete-endpoint) and deploy again"
            )
        return str(existing.get("EndpointConfigName", ""))

    def _create_config(self, config_name: str, model_name: str, version: str) -> None:
        self._call(
            "create_endpoint_config",
            f"create endpoint config {config_name}",
            EndpointConfigName=config_name,
            ProductionVariants=[
                production_variant(self._chosen(), model_name, self.settings.sagemaker_endpoint_instance)
            ],
            Tags=self._tags(version),
        )
        kind = endpoint_kind(self._chosen(), self.settings.sagemaker_endpoint_instance)
        self._record(f"created endpoint config {config_name} ({kind})")

    def _point_endpoint(
        self, existing: dict[str, Any] | None, config_name: str, previous_config: str, version: str
    ) -> None:
        """Create the endpoint on `config_name`, or update the existing one to it (of the same kind:
        SageMaker cannot turn a real-time endpoint into a serverless one, nor back)."""
        if existing is None:
            self._call(
                "create_endpoint",
                f"create endpoint {self.endpoint_name}",
                EndpointName=self.endpoint_name,
                EndpointConfigName=config_name,
                Tags=self._tags(version),
            )
            self._record(f"creating endpoint {self.endpoint_name} with {config_name}")
            return
        check_same_kind(self.sm, previous_config, self._chosen())
        self._call(
            "update_endpoint",
            f"update endpoint {self.endpoint_name}",
            EndpointName=self.endpoint_name,
            EndpointConfigName=config_name,
            RetainAllVariantProperties=False,
        )
        self._record(f"updating endpoint {self.endpoint_name} from {previous_config} to {config_name}")

    def _tags(self, version: str) -> list[dict[str, str]]:
        return [{"Key": "app", "Value": "pulse"}, {"Key": "pulse:model-version", "Value": version}]

    def _call(self, operation: str, action: str, **kwargs: Any) -> None:
        try:
            getattr(self.sm, operation)(**kwargs)
        except aws_errors() as exc:
            why = explain(exc, action)
            self._record(why)
            raise DeployFailed(why) from None

    def _ensure_model(self, model_name: str, image: str, model_data: str, version: str) -> None:
        try:
            found = self.sm.describe_model(ModelName=model_name)
        except aws_errors() as exc:
            if not not_found(exc):
                raise DeployFailed(explain(exc, f"describe model {model_name}")) from None
        else:
            url = found.get("PrimaryContainer", {}).get("ModelDataUrl")
            if url != model_data:
                raise DeployFailed(f"SageMaker model {model_name} exists but serves {url}, not {model_data}")
            self._record(f"reusing model {model_name}")
            return
        try:
            self.sm.create_model(
                ModelName=model_name,
                PrimaryContainer={"Image": image, "ModelDataUrl": model_data},
                ExecutionRoleArn=self.settings.sagemaker_role_arn,
                Tags=self._tags(version),
            )
        except aws_errors() as exc:
            if already_exists(exc):  # created meanwhile by another replica: same name, same version
                self._record(f"reusing model {model_name}")
                return
            raise DeployFailed(explain(exc, f"create model {model_name}")) from None
        self._record(f"created model {model_name} from {model_data}")

    def _describe(self) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = self.sm.describe_endpoint(EndpointName=self.endpoint_name)
        except aws_errors() as exc:
            if not_found(exc):
                return None
            raise DeployFailed(explain(exc, f"describe endpoint {self.endpoint_name}")) from None
        return answer

    def _wait(self, config_name: str, previous_config: str) -> str | None:
        """None once the endpoint serves `config_name`; else why it does not."""
        deadline = self.clock() + self.timeout_seconds
        moved = False  # seen the endpoint leave InService since our call
        while True:
            try:
                found = self._describe()
            except DeployFailed as exc:
                return str(exc)
            if found is None:
                return f"endpoint {self.endpoint_name} disappeared while deploying"
            status = str(found.get("EndpointStatus", ""))
            serving = found.get("EndpointConfigName")
            failure = found.get("FailureReason")
            moved = moved or status != "InService"
            if status == "InService" and serving == config_name:
                return None
            if status in ("Failed", "UpdateRollbackFailed"):
                return f"endpoint status {status}: {failure or 'no reason given'}"
            if status == "InService" and moved and serving == previous_config:
                # SageMaker rolled the update back on its own and serves the previous config.
                return f"SageMaker rolled the update back: {failure or 'no reason given'}"
            if self.clock() >= deadline:
                return f"endpoint did not become InService within {self.timeout_seconds:.0f}s (status {status})"
            self.sleep(self.poll_seconds)

    def status(self) -> dict[str, str]:
        """The endpoint as SageMaker sees it: name, status, endpoint config (and failure reason),
        `{"status": "missing"}` if it does not exist, or status "unknown" with a reason if
        SageMaker cannot be asked."""
        try:
            found = self._describe()
        except DeployFailed as exc:
            return {"endpoint_name": self.endpoint_name, "status": "unknown", "reason": str(exc)}
        if found is None:
            return {"status": "missing"}
        out = {
            "endpoint_name": str(found.get("EndpointName", self.endpoint_name)),
            "status": str(found.get("EndpointStatus", "")),
            "endpoint_config_name": str(found.get("EndpointConfigName", "")),
        }
        if found.get("FailureReason"):
            out["failure_reason"] = str(found["FailureReason"])
        return out


def production_variant(choice: EndpointChoice, model_name: str, instance: str = "ml.t2.medium") -> dict[str, Any]:
    """The endpoint config's one variant: serverless when the choice gives it a memory size, else one
    real-time `instance`."""
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": model_name}
    if choice.serverless_memory_mb:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": choice.serverless_memory_mb,
            "MaxConcurrency": choice.serverless_max_concurrency,
        }
        return variant
    return {**variant, "InitialInstanceCount": 1, "InstanceType": instance, "InitialVariantWeight": 1.0}


def endpoint_kind(choice: EndpointChoice, instance: str) -> str:
    """The kind of endpoint the choice is, in words (`instance`: a real-time one's)."""
    if choice.serverless_memory_mb:
        return f"serverless, {choice.serverless_memory_mb} MB, {choice.serverless_max_concurrency} at once"
    return f"real-time, {instance}"


def check_same_kind(sm: Any, previous_config: str, choice: EndpointChoice) -> None:
    """Refuse to update the endpoint `choice` names into the other kind, which SageMaker cannot do."""
    try:
        variants = sm.describe_endpoint_config(EndpointConfigName=previous_config)["ProductionVariants"]
    except aws_errors() as exc:
        raise DeployFailed(explain(exc, f"describe endpoint config {previous_config}")) from None
    serving = "serverless" if any("ServerlessConfig" in v for v in variants) else "real-time"
    if serving != choice.kind:
        raise DeployFailed(
            f"endpoint {choice.name} is {serving} and the settings ask for {choice.kind}, and SageMaker "
            f"cannot turn one kind into the other: move the live model from the Health & costs page, which "
            f"deploys it to a {choice.kind} endpoint beside this one and deletes this one (docs/aws.md)"
        )


def check_deployable(store: S3Store, settings: Settings, version: str) -> None:
    """A role to run the model, an artifact in the registry, and a family the image serves."""
    if not settings.sagemaker_role_arn:
        raise DeployFailed("PULSE_SAGEMAKER_ROLE_ARN is not set: the SageMaker model needs an execution role")
    try:
        registered = store.exists(keys.model_key(version))
    except PulseError as exc:
        raise DeployFailed(f"cannot check the artifact of {version}: {exc}") from exc
    if not registered:
        raise DeployFailed(f"model version {version} has no {ARTIFACT} in the registry")
    try:
        family = load_card(store, version).family
    except ModelUnavailable:  # an artifact put there by hand, without a card: let SageMaker judge it
        family = "fasttext"
    except PulseError as exc:
        raise DeployFailed(f"cannot read the model card of {version}: {exc}") from exc
    if family != "fasttext" and not settings.sagemaker_model_image:
        raise DeployFailed(
            f"model version {version} is a {family} model; a BlazingText endpoint serves fastText models "
            "only: set PULSE_SAGEMAKER_MODEL_IMAGE to the Pulse model image (docs/aws.md), which serves both"
        )


def _undo_update(deployer: SageMakerDeployer, previous_config: str) -> str:
    """Put the previous endpoint config back, or delete an endpoint whose creation failed
    (so the next deployment can create it again); say what happened."""
    sm = deployer.sm
    try:
        now = deployer._describe()
    except DeployFailed:
        now = None
    status = now.get("EndpointStatus") if now else None
    if not previous_config:
        if status != "Failed":
            return "There was no previous endpoint configuration to go back to."
        try:
            sm.delete_endpoint(EndpointName=deployer.endpoint_name)
        except aws_errors() as exc:
            why = explain(exc, f"delete the failed endpoint {deployer.endpoint_name}")
            deployer._record(why)
            return f"The failed endpoint is left in place ({why}); delete it before deploying again."
        deployer._record(f"deleted the failed endpoint {deployer.endpoint_name}")
        return "The failed endpoint was deleted, so the next deployment creates it again."
    if now is not None and status == "InService" and now.get("EndpointConfigName") == previous_config:
        deployer._record(f"endpoint still serves the previous config {previous_config}")
        return f"The endpoint still serves the previous configuration {previous_config}."
    try:
        sm.update_endpoint(
            EndpointName=deployer.endpoint_name,
            EndpointConfigName=previous_config,
            RetainAllVariantProperties=False,
        )
    except aws_errors() as exc:
        why = explain(exc, f"roll endpoint {deployer.endpoint_name} back to {previous_config}")
        deployer._record(f"rollback failed: {why}")
        return f"Rolling back failed too ({why}); check the endpoint in the SageMaker console."
    deployer._record(f"rolling endpoint {deployer.endpoint_name} back to {previous_config}")
    return f"Rolled the endpoint back to the previous configuration {previous_config}."
