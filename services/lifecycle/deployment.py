"""Which model version serves: `deployments/current.json`, plus one history record per change."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from services.errors import KeyNotFound, ModelUnavailable
from services.lifecycle.registry import load_card
from services.store import keys
from services.store.base import ObjectStore

CURRENT = keys.DEPLOYMENT


class EndpointMover(Protocol):
    """Chooses another endpoint for the live model (an endpoint of the other kind, on SageMaker)."""

    def current(self) -> Any:
        """The endpoint that serves now, with `.name` and `.kind` ("real-time" or "serverless")."""
        ...

    def choose(self, serverless_memory_mb: int) -> tuple[Any, Any]:
        """Write the new choice; return (old, new) choices, each with `.name` and `.kind`."""
        ...

    def save(self, choice: Any) -> None:
        """Put a choice back (after a move that failed)."""
        ...

    def retire(self, name: str) -> str:
        """Delete the endpoint left behind; say what happened."""
        ...


class Deployer(Protocol):
    """Puts a registered model version behind the scoring endpoint.

    `activate` blocks until the version serves. If it cannot, it leaves (or puts back) the previous
    version serving and raises `DeployFailed`. The deployment record (`deployments/current.json`
    and history) is written by the caller only after `activate` returned.
    """

    name: str

    def activate(self, version: str, previous: str | None) -> dict[str, str]:
        """Serve `version`; return details worth recording (endpoint config name, etc.)."""
        ...

    def status(self) -> dict[str, str]:
        """What serves now, as the backend sees it (e.g. endpoint status)."""
        ...


@dataclass(frozen=True)
class Deployment:
    """One switch of the live model."""

    version: str
    deployed_at: str
    deployed_by: str
    reason: str
    previous: str | None = None
    details: dict[str, str] = field(default_factory=dict)


def current(store: ObjectStore) -> Deployment | None:
    """The live deployment, or None on a workspace where nothing was deployed yet."""
    try:
        return Deployment(**json.loads(store.get(CURRENT)))
    except KeyNotFound:
        return None


def record_deployment(
    store: ObjectStore,
    version: str,
    *,
    by: str,
    reason: str,
    extra: dict[str, str] | None = None,
    keep_previous: bool = False,
) -> Deployment:
    """Record `version` as live. The history record is written first, so a switch that happened is
    always in the history; the pointer itself is one atomic write. With `keep_previous` (the live
    version deployed again, elsewhere) the version a rollback goes back to stays the same."""
    load_card(store, version)  # refuses a version that is not registered
    live = current(store)
    dep = Deployment(
        version=version,
        deployed_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        deployed_by=by,
        reason=reason,
        previous=(live.previous if keep_previous else live.version) if live else None,
        details=dict(extra or {}),
    )
    body = json.dumps(asdict(dep), indent=2).encode()
    store.put(f"{keys.DEPLOYMENT_HISTORY}{keys.file_stamp(dep.deployed_at)}-{version}.json", body)
    store.put(CURRENT, body)
    return dep


def deploy_local(store: ObjectStore, version: str, *, by: str, reason: str) -> Deployment:
    """Make `version` live on the local backend (no gate: for the bootstrap model and tests)."""
    return record_deployment(store, version, by=by, reason=reason, extra={"backend": "local"})


def history(store: ObjectStore) -> list[Deployment]:
    """Every deployment, oldest first."""
    return [Deployment(**json.loads(store.get(k))) for k in store.list(keys.DEPLOYMENT_HISTORY)]


class LocalDeployer:
    """The local backend: the deployment record is the switch (`LocalEndpoint` follows it)."""

    name = "local"

    def activate(self, version: str, previous: str | None) -> dict[str, str]:
        return {}

    def status(self) -> dict[str, str]:
        return {"status": "InService"}


def require_current(store: ObjectStore) -> Deployment:
    dep = current(store)
    if dep is None:
        raise ModelUnavailable(
            "no model is deployed in this workspace: run `python -m services.cli bootstrap` "
            "(or `demo`) to train and deploy the first one"
        )
    return dep
