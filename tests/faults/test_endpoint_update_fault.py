"""A SageMaker endpoint update that fails leaves the previous model serving: the deploy raises
`DeployFailed`, the endpoint is InService on its previous endpoint config, `deployments/current.json`
still names the previous version, and scoring through the workspace's endpoint goes on with it.

Against moto's server with the SageMaker stand-in (services/aws/standin.py) in a subprocess, on
the demo workspace built by `python -m services.cli demo`. The stand-in's UpdateEndpoint loads the
new model artifact as the BlazingText container would, and when it cannot, the endpoint goes back to
its previous config with a FailureReason, as SageMaker's automatic rollback leaves it.

Two ways an unloadable model reaches the endpoint:
- through `promote`, whose gate loads the candidate with Pulse's own fastText first: the gate passes,
  and the container then cannot load what it downloads (here the artifact is replaced in S3 after the
  gate, just before UpdateEndpoint; in production a container whose fastText cannot read the file, or
  an object changed or damaged in S3 between the two reads, end the same way);
- through `SageMakerDeployer.activate` with no gate (the path a rollback takes): a registered version
  whose model.tar.gz holds a model.bin that is not a fastText model.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from services.aws.clients import sagemaker_client
from services.aws.deploy import SageMakerDeployer
from services.errors import DeployFailed
from services.lifecycle.deployment import current, history
from services.lifecycle.promotion import LOCK, promote
from services.lifecycle.registry import ARTIFACT, fetch_model, load_card, new_version
from services.model.prediction import prepare
from services.store.base import ObjectStore
from services.workspace import open_workspace
from tests.faults.conftest import StandIn

TEXTS = ["the new rota is fine by me", "I am exhausted and nobody listens", "great session today, thanks all"]
EXPECTED = "DeployFailed; the endpoint is InService on its previous config, current.json unchanged, scoring goes on"


def garbage_artifact() -> bytes:
    """A model.tar.gz as SageMaker packs one, whose model.bin is not a fastText model."""
    data = b"not a fastText model\n" * 64
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def register_copy(store: ObjectStore, version: str, artifact: bytes) -> str:
    """Register a new version: the live card under a new name, with `artifact`."""
    card = replace(load_card(store, version), version=new_version(), parent=version, notes="fault test")
    store.put(f"models/{card.version}/{ARTIFACT}", artifact, if_absent=True)
    store.put(f"models/{card.version}/card.json", json.dumps(asdict(card), indent=2).encode())
    return card.version


class Before:
    """What serves before the failed update."""

    def __init__(self, standin: StandIn) -> None:
        self.settings = standin.settings()
        self.workspace = open_workspace(self.settings)
        self.store = self.workspace.store
        self.sm = sagemaker_client(self.settings)
        self.deployment = current(self.store)
        assert self.deployment is not None
        self.version = self.deployment.version
        self.history = history(self.store)
        found = self.sm.describe_endpoint(EndpointName=self.settings.sagemaker_endpoint_name)
        assert found["EndpointStatus"] == "InService"
        self.config = found["EndpointConfigName"]

    def deployer(self) -> SageMakerDeployer:
        return SageMakerDeployer(self.sm, self.store, self.settings, poll_seconds=0.05, timeout_seconds=120)  # type: ignore[arg-type]

    def assert_still_serving(self, failed: DeployFailed, tmp_path: Path) -> None:
        message = str(failed)
        assert self.settings.sagemaker_endpoint_name in message and self.config in message
        found = self.sm.describe_endpoint(EndpointName=self.settings.sagemaker_endpoint_name)
        assert found["EndpointStatus"] == "InService"
        assert found["EndpointConfigName"] == self.config
        assert found.get("FailureReason")  # SageMaker says why the update did not take
        assert current(self.store) == self.deployment
        assert history(self.store) == self.history
        assert not self.store.exists(LOCK)  # the deploy lock is free for the next attempt
        # A fresh workspace (another replica) scores through the endpoint, with the previous version.
        version, predictions = open_workspace(self.settings).endpoint.score([prepare(t) for t in TEXTS])
        assert version == self.version
        local = fetch_model(self.store, self.version, tmp_path / "models").predict(TEXTS)
        assert [p.label for p in predictions] == [p.label for p in local]


@pytest.mark.fault(
    operation="endpoint update (SageMaker stand-in)",
    fault="the container cannot load the model that passed the gate",
    when="promote: the artifact changes in S3 between the gate and UpdateEndpoint",
    expected=EXPECTED,
)
def test_a_promotion_the_endpoint_cannot_load_leaves_the_previous_model_serving(
    standin: StandIn, tmp_path: Path
) -> None:
    before = Before(standin)
    good = before.store.get(f"models/{before.version}/{ARTIFACT}")
    candidate = register_copy(before.store, before.version, good)  # the live model: the gate passes
    deployer = before.deployer()
    swapped: list[str] = []

    def damage_the_artifact(params: dict[str, Any], **_: Any) -> None:
        if not swapped:
            before.store.put(f"models/{candidate}/{ARTIFACT}", garbage_artifact())
            swapped.append(params["EndpointConfigName"])

    deployer.sm.meta.events.register("before-parameter-build.sagemaker.UpdateEndpoint", damage_the_artifact)
    try:
        with pytest.raises(DeployFailed) as info:
            promote(before.store, deployer, candidate, by="tests", reason="fault test", margin=0.01)
    finally:
        deployer.sm.meta.events.unregister("before-parameter-build.sagemaker.UpdateEndpoint", damage_the_artifact)
    assert swapped and swapped[0] != before.config  # the gate passed and the update was asked for
    assert "rolled the update back" in str(info.value)
    before.assert_still_serving(info.value, tmp_path)


@pytest.mark.fault(
    operation="endpoint update (SageMaker stand-in)",
    fault="a model.tar.gz whose model.bin is not a fastText model",
    when="SageMakerDeployer.activate with no gate (the path of a rollback)",
    expected=EXPECTED,
)
def test_an_unloadable_version_is_rolled_back_by_the_endpoint(standin: StandIn, tmp_path: Path) -> None:
    before = Before(standin)
    broken = register_copy(before.store, before.version, garbage_artifact())
    deployer = before.deployer()
    with pytest.raises(DeployFailed) as info:
        deployer.activate(broken, before.version)
    assert any("updating endpoint" in line for line in deployer.events)
    before.assert_still_serving(info.value, tmp_path)
