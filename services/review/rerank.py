"""Re-ranking the review queue by the model now live: after a new model goes live, "least sure
first" should mean least sure *now*, or annotators keep labelling what the old model found hard
(the learning-loop benchmark compares re-ranked and static queues)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.errors import PulseError
from services.model.prediction import prepare
from services.review.items import text_key, waiting_items
from services.store import keys
from services.store.base import ObjectStore

if TYPE_CHECKING:
    from services.lifecycle.endpoint import Endpoint

RERANK_PREFIX = "rerank-"  # sorts after every batch index (hex ids), and by time among re-ranks


def rerank_queue(
    store: ObjectStore,
    endpoint: Endpoint,
    *,
    version: str | None = None,
    max_chars: int = 2000,
    now: datetime | None = None,
) -> int:
    """Order the queue by how unsure the live model (`endpoint`) is, not the model that scored each
    item at ingest. Writes one more index file listing every queued item with its new margin;
    replicas read it like a new batch's index, and it overrides the earlier entries. Item files,
    labels and claims are not touched, so annotators at work lose nothing. With `version`, refuses
    (PulseError, nothing written) unless that version did the scoring. Returns the number re-ranked."""
    raws = [(raw, part) for raw, part in waiting_items(store) if isinstance(raw.get("text"), str) and raw.get("id")]
    if not raws:
        return 0
    endpoint.refresh()
    scheme = endpoint.preprocessing()
    scored_by, predictions = endpoint.score([prepare(r["text"], max_chars, scheme) for r, _ in raws])
    if version is not None and scored_by != version:
        raise PulseError(f"the endpoint still serves {scored_by}, not {version}; re-rank the queue later")
    rows = []
    for (raw, part), prediction in zip(raws, predictions, strict=True):
        top = [*sorted(prediction.probs.values(), reverse=True), 0.0, 0.0]
        rows.append(
            {
                "id": str(raw["id"]),
                "confidence": round(prediction.confidence, 4),
                "margin": round(top[0] - top[1], 4),
                "group": str(raw.get("group", "")),
                "time": str(raw.get("time", "")),
                "text_key": text_key(str(raw["text"])),
                "part": part,
            }
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    body = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n"
    store.put(f"{keys.REVIEW_INDEX}{RERANK_PREFIX}{stamp}.jsonl", body.encode())
    return len(rows)
