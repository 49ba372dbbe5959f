"""Which SageMaker endpoint serves, and of which kind: the settings' (PULSE_SAGEMAKER_ENDPOINT_NAME,
PULSE_SAGEMAKER_SERVERLESS_MEMORY_MB), until an admin moves the live model to the other kind from the
Health & costs page; from then on the workspace's own choice (`settings/endpoint.json`), so every
replica deploys to and scores with the same endpoint.

SageMaker cannot update a real-time endpoint into a serverless one (nor back), so a move is a second
endpoint: the choice names it (the base name, or the base name with `-serverless` / `-realtime`), the
live version is deployed there (`lifecycle.promotion.redeploy`), the deployment record names it, and
the old endpoint is deleted once the new one serves. A move that fails puts the old choice back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from services.aws.errors import aws_errors, explain
from services.errors import KeyNotFound, PulseError
from services.store import keys

if TYPE_CHECKING:
    from services.config import Settings
    from services.store.base import ObjectStore


@dataclass(frozen=True)
class EndpointChoice:
    name: str
    serverless_memory_mb: int = 0  # 0: real-time
    serverless_max_concurrency: int = 5

    @property
    def kind(self) -> str:
        return "serverless" if self.serverless_memory_mb else "real-time"


def endpoint_choice(store: ObjectStore, settings: Settings) -> EndpointChoice:
    """The workspace's choice, else the settings'."""
    try:
        data = json.loads(store.get(keys.ENDPOINT_CHOICE))
        return EndpointChoice(
            str(data["name"]), int(data["serverless_memory_mb"]), int(data["serverless_max_concurrency"])
        )
    except KeyNotFound:
        pass
    except (ValueError, KeyError, TypeError):
        pass  # a damaged choice: the settings' until a move writes it again
    return EndpointChoice(
        settings.sagemaker_endpoint_name,
        settings.sagemaker_serverless_memory_mb,
        settings.sagemaker_serverless_max_concurrency,
    )


class EndpointMover:
    """Moves the live model to an endpoint of the other kind (see the module's docstring)."""

    def __init__(self, sm_client: Any, store: ObjectStore, settings: Settings) -> None:
        self.sm = sm_client
        self.store = store
        self.settings = settings

    def current(self) -> EndpointChoice:
        return endpoint_choice(self.store, self.settings)

    def choose(self, serverless_memory_mb: int) -> tuple[EndpointChoice, EndpointChoice]:
        """Write the choice of an endpoint of the kind `serverless_memory_mb` says (0: real-time);
        returns (old, new). `PulseError` when the endpoint is of that kind already."""
        old = self.current()
        if bool(serverless_memory_mb) == bool(old.serverless_memory_mb):
            raise PulseError(f"endpoint {old.name} is {old.kind} already")
        if serverless_memory_mb and not (1024 <= serverless_memory_mb <= 6144 and serverless_memory_mb % 1024 == 0):
            raise PulseError("a serverless endpoint's memory is 1024 to 6144 MB, in steps of 1024")
        base = self.settings.sagemaker_endpoint_name
        kind = "serverless" if serverless_memory_mb else "realtime"
        new = EndpointChoice(
            base if old.name != base else f"{base}-{kind}"[:63],
            serverless_memory_mb,
            old.serverless_max_concurrency,
        )
        self.save(new)
        return old, new

    def save(self, choice: EndpointChoice) -> None:
        self.store.put(keys.ENDPOINT_CHOICE, json.dumps(asdict(choice)).encode())

    def retire(self, name: str) -> str:
        """Delete the endpoint the live model left; what happened, in words (never raises)."""
        try:
            self.sm.delete_endpoint(EndpointName=name)
        except aws_errors() as exc:
            return (
                f"the old endpoint {name} is still there ({explain(exc, f'delete endpoint {name}')}): delete it by hand"
            )
        return f"the old endpoint {name} is deleted"
