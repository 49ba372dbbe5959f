"""Switching the live model, as the Models page and the command line both do it: promote (gate,
deploy) or roll back, then re-rank the review queue by the model now live, so "least sure first"
means least sure to the model people's labels will correct next. A re-rank that fails never undoes
the switch: it is reported beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.errors import DeployFailed, PulseError
from services.lifecycle.deployment import Deployment
from services.lifecycle.promotion import GateVerdict, promote, redeploy, rollback

if TYPE_CHECKING:
    from services.workspace import Workspace


@dataclass(frozen=True)
class Switch:
    """A switch that happened: the deployment, the gate's verdict (none for a rollback), and how
    the review queue followed (items re-ranked, or why it keeps its order)."""

    deployment: Deployment
    verdict: GateVerdict | None
    reranked: int = 0
    rerank_problem: str | None = None

    def queue_note(self) -> str:
        """The queue's part, in words ("" when the queue was empty)."""
        if self.rerank_problem:
            return f"The review queue keeps its order: {self.rerank_problem}."
        if self.reranked:
            return f"Review queue re-ranked by {self.deployment.version} ({self.reranked:,} items)."
        return ""


def _rerank(ws: Workspace, version: str) -> tuple[int, str | None]:
    from services.review.rerank import rerank_queue

    try:
        return rerank_queue(ws.store, ws.endpoint, version=version, max_chars=ws.settings.max_text_chars), None
    except PulseError as exc:
        return 0, str(exc)


def switch_to(
    ws: Workspace, version: str, *, by: str, reason: str, override_reason: str | None = None, role: str = ""
) -> Switch:
    """Gate and deploy `version` (`promote`: `GateFailed`, `DeployFailed` switch nothing), then
    re-rank the review queue by it."""
    dep, verdict = promote(
        ws.store,
        ws.deployer,
        version,
        by=by,
        reason=reason,
        margin=ws.settings.gate_margin,
        override_reason=override_reason,
        role=role,
    )
    return Switch(dep, verdict, *_rerank(ws, dep.version))


def move_endpoint(ws: Workspace, *, serverless_memory_mb: int, by: str, role: str = "") -> tuple[Deployment, str]:
    """Move the live model to an endpoint of the other kind (serverless with `serverless_memory_mb`,
    else real-time): choose it, deploy the live version there, record it, delete the old one.
    Returns the deployment and what became of the old endpoint; a failed deploy puts the old choice
    back and raises `DeployFailed` (the old endpoint still serves)."""
    if ws.mover is None:
        raise DeployFailed("this workspace scores in its own process: there is no endpoint to move")
    old, new = ws.mover.choose(serverless_memory_mb)
    try:
        dep = redeploy(ws.store, ws.deployer, by=by, reason=f"moved to a {new.kind} endpoint ({new.name})", role=role)
    except PulseError:
        ws.mover.save(old)
        raise
    return dep, ws.mover.retire(old.name)


def roll_back(ws: Workspace, *, by: str, reason: str, role: str = "") -> Switch:
    """Put the previous version back (`rollback`), then re-rank the review queue by it."""
    dep = rollback(ws.store, ws.deployer, by=by, reason=reason, role=role)
    return Switch(dep, None, *_rerank(ws, dep.version))
