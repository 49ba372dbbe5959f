"""Promote a model version (gate on the gold set, then deploy) and roll back. The same steps for
every backend: only `Deployer.activate` differs between the local pointer and SageMaker."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.access import audit
from services.errors import DeployFailed, GateFailed, KeyNotFound, ModelUnavailable
from services.lifecycle.deployment import Deployer, Deployment, current, record_deployment
from services.lifecycle.gold import load_gold
from services.lifecycle.registry import fetch_model, load_card, model_cache_dir
from services.model.evaluation import evaluate, rounded, summary
from services.store import keys, lease
from services.store.base import ObjectStore

LOCK = keys.DEPLOY_LOCK
LOCK_LEASE = timedelta(minutes=45)  # a deploy that died holding the lock frees it after this


@dataclass(frozen=True)
class GateVerdict:
    """The candidate against the live model on the same gold set."""

    candidate: str
    live: str | None
    candidate_f1: float
    live_f1: float | None
    margin: float
    passed: bool
    gold_set: str
    n: int
    candidate_metrics: dict[str, float]
    live_metrics: dict[str, float] | None

    def explain(self) -> str:
        """The verdict in words and numbers, rounded as every table shows them; a candidate below the
        live model says so even when the gate lets it through."""
        cand = rounded(self.candidate_f1)
        if self.live is None or self.live_f1 is None:
            return f"{self.candidate}: macro-F1 {cand:.3f} on {self.n:,} gold messages (nothing live yet)"
        live = rounded(self.live_f1)
        change = rounded(cand - live)
        figures = f"macro-F1 {cand:.3f} against {live:.3f} for the live {self.live}, on {self.n:,} gold messages"
        if not self.passed:
            return (
                f"{self.candidate} is refused: it is {-change:.3f} below the live model, more than the "
                f"{self.margin:.3f} the gate allows ({figures})"
            )
        if change < 0:
            return (
                f"{self.candidate} passes, but it is {-change:.3f} below the live model: a drop within the "
                f"{self.margin:.3f} the gate allows ({figures})"
            )
        if change == 0:
            return f"{self.candidate} passes: level with the live model ({figures})"
        return f"{self.candidate} passes: {change:.3f} above the live model ({figures})"


def gate(store: ObjectStore, candidate: str, *, margin: float, cache_dir: Path | None = None) -> GateVerdict:
    """Evaluate the candidate and the live model on the gold set and compare their macro-F1."""
    cache = cache_dir or model_cache_dir(store)
    gold = load_gold(store)
    cand_model = fetch_model(store, candidate, cache)  # refuses a missing or corrupt artifact
    cand = summary(evaluate(cand_model.predict(gold.texts), gold.labels))
    live = current(store)
    live_metrics = None
    if live is not None and live.version != candidate:
        live_model = fetch_model(store, live.version, cache)
        live_metrics = summary(evaluate(live_model.predict(gold.texts), gold.labels))
    passed = live_metrics is None or live_metrics["macro_f1"] - cand["macro_f1"] <= margin
    return GateVerdict(
        candidate=candidate,
        live=live.version if live else None,
        candidate_f1=cand["macro_f1"],
        live_f1=live_metrics["macro_f1"] if live_metrics else None,
        margin=margin,
        passed=passed,
        gold_set=gold.fingerprint(),
        n=len(gold.texts),
        candidate_metrics=cand,
        live_metrics=live_metrics,
    )


class _DeployLock:
    """At most one promote or rollback at a time, across processes and replicas (`services.lease`)."""

    def __init__(self, store: ObjectStore, by: str, version: str) -> None:
        self.store, self.by, self.version = store, by, version
        self.token = secrets.token_hex(8)

    def _body(self) -> bytes:
        return json.dumps({"by": self.by, "version": self.version, "since": _now(), "token": self.token}).encode()

    def __enter__(self) -> None:
        lease.acquire(
            self.store,
            LOCK,
            self._body,
            takeovers=keys.DEPLOY_LOCK_TAKEOVERS,
            alive=lambda held: datetime.now(UTC) - datetime.fromisoformat(held["since"]) < LOCK_LEASE,
            busy=lambda held: DeployFailed(
                f"another deployment (of {held['version']} by {held['by']}, since {held['since']}) is in "
                "progress; try again when it has finished"
            ),
            contested=DeployFailed("another deployment is taking over an expired lock; try again"),
            churning=DeployFailed("the deployment lock is changing hands too fast; try again"),
        )

    def __exit__(self, *exc: object) -> None:
        lease.release(self.store, LOCK, self.token)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def promote(
    store: ObjectStore,
    deployer: Deployer,
    version: str,
    *,
    by: str,
    reason: str,
    margin: float,
    override_reason: str | None = None,
    role: str = "",
) -> tuple[Deployment, GateVerdict]:
    """Gate, then deploy `version`. A refused gate raises `GateFailed` unless an override reason is
    given (it is recorded); a failed deploy raises `DeployFailed` and switches nothing."""
    load_card(store, version)
    if not store.exists(keys.model_key(version)):
        raise ModelUnavailable(f"model version {version}: its artifact is missing; it cannot be promoted")
    with _DeployLock(store, by, version):
        live = current(store)
        if live is not None and live.version == version:
            raise DeployFailed(f"{version} is already live")
        verdict = gate(store, version, margin=margin)
        gate_details = {"candidate_f1": verdict.candidate_f1, "live_f1": verdict.live_f1, "live": verdict.live}
        if not verdict.passed and not (override_reason and override_reason.strip()):
            audit.try_record(store, by, role, "promotion_refused", version, gate_details)
            raise GateFailed(verdict.explain() + ". An admin may override with a written reason.")
        details = deployer.activate(version, live.version if live else None)
        note = reason if verdict.passed else f"{reason} [gate overridden: {override_reason}]"
        dep = record_deployment(
            store,
            version,
            by=by,
            reason=note,
            extra={"gate": json.dumps(asdict(verdict)), "backend": deployer.name, **details},
        )
        overridden = {"override_reason": (override_reason or "")[:200]} if not verdict.passed else {}
        audit.try_record(
            store, by, role, "promotion", version, {**gate_details, "gate_passed": verdict.passed, **overridden}
        )
        return dep, verdict


def redeploy(store: ObjectStore, deployer: Deployer, *, by: str, reason: str, role: str = "") -> Deployment:
    """Deploy the live version again, where the deployer now deploys (no gate: it serves already);
    the version a rollback goes back to stays the same."""
    live = current(store)
    if live is None:
        raise DeployFailed("nothing is deployed yet")
    with _DeployLock(store, by, live.version):
        details = deployer.activate(live.version, live.previous)
        dep = record_deployment(
            store, live.version, by=by, reason=reason, extra={"backend": deployer.name, **details}, keep_previous=True
        )
        audit.try_record(store, by, role, "endpoint_moved", live.version, {"reason": reason[:200]})
        return dep


def rollback(store: ObjectStore, deployer: Deployer, *, by: str, reason: str, role: str = "") -> Deployment:
    """Put the previous version back in one step (no gate: it served before)."""
    live = current(store)
    if live is None or not live.previous:
        raise DeployFailed("there is no previous version to roll back to")
    target = live.previous
    try:
        load_card(store, target)
        store.get(keys.model_key(target))
    except (ModelUnavailable, KeyNotFound):
        raise DeployFailed(f"cannot roll back: the artifact of {target} is missing") from None
    with _DeployLock(store, by, target):
        details = deployer.activate(target, live.version)
        dep = record_deployment(
            store, target, by=by, reason=f"rollback: {reason}", extra={"backend": deployer.name, **details}
        )
        audit.try_record(store, by, role, "rollback", target, {"from": live.version, "reason": reason[:200]})
        return dep
