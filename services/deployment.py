"""Which model version serves: `deployments/current.json`, plus one history record per change."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol
from datetime import UTC, datetime

from services.errors import KeyNotFound, ModelUnavailable
from services.registry import load_card
from services.storage import ObjectStore

CURRENT = "deployments/current.json"


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


def current(store: ObjectStore) -> Deployment | None:
    """The live deployment, or None on a workspace where nothing was deployed yet."""
    try:
        return Deployment(**json.loads(store.get(CURRENT)))
    except KeyNotFound:
        return None


def deploy_local(store: ObjectStore, version: str, *, by: str, reason: str) -> Deployment:
    """Point the local endpoint at `version`. The history record is written first, so a switch
    that happened is always in the history; the pointer itself is one atomic write."""
    load_card(store, version)  # refuses a version that is not registered
    live = current(store)
    dep = Deployment(
        version=version,
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        deployed_by=by,
        reason=reason,
        previous=live.version if live else None,
    )
    body = json.dumps(asdict(dep), indent=2).encode()
    stamp = dep.deployed_at.replace(":", "").replace("-", "")
    store.put(f"deployments/history/{stamp}-{version}.json", body)
    store.put(CURRENT, body)
    return dep


def require_current(store: ObjectStore) -> Deployment:
    dep = current(store)
    if dep is None:
        raise ModelUnavailable(
            "no model is deployed in this workspace: run `python -m services.cli bootstrap` "
            "(or `demo`) to train and deploy the first one"
        )
    return dep
