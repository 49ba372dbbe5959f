"""Claim + submit round trip on the local store with 1k, 10k and 100k items queued.

Prints p50/p95 per round trip and the ratio to 1k; the issue's target is < 150 ms at 100k and no
growth with the queue size. No timing assertions (see tests/benchmarks/conftest.py)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from services.review.labeling import LabelingService
from services.store.local import LocalStore
from tests.unit.review.test_labeling import make_item

ROUNDS = 200
SIZES = (1_000, 10_000, 100_000)


def _fill(root: Path, n: int) -> None:
    """Write n items and one index straight into the workspace folder (what ingest would leave)."""
    items = root / "review" / "unrecognized"
    items.mkdir(parents=True)
    rows = []
    for i in range(n):
        item = make_item(i)
        (items / f"{item['id']}.json").write_text(json.dumps(item), encoding="utf-8")
        top = sorted(item["probs"].values(), reverse=True)
        rows.append({"id": item["id"], "confidence": item["confidence"], "margin": round(top[0] - top[1], 4),
                     "group": item["group"], "time": item["time"]})  # fmt: skip
    index = root / "review" / "index"
    index.mkdir(parents=True)
    (index / "b1.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def _round_trips(store: LocalStore) -> tuple[float, list[float]]:
    svc = LabelingService(store, double_share=0.05)
    t0 = time.perf_counter()
    first = svc.claim_next("bench")
    build = time.perf_counter() - t0
    assert first is not None
    svc.submit(first.id, "neutral", "bench")
    times = []
    for n in range(ROUNDS):
        t0 = time.perf_counter()
        item = svc.claim_next("bench")
        assert item is not None
        svc.submit(item.id, ("negative", "neutral", "positive")[n % 3], "bench")
        times.append(time.perf_counter() - t0)
    return build, times


def test_claim_and_submit_round_trip(tmp_path: Path) -> None:
    results: dict[int, tuple[float, float, float]] = {}
    for size in SIZES:
        root = tmp_path / f"ws{size}"
        t0 = time.perf_counter()
        _fill(root, size)
        filled = time.perf_counter() - t0
        build, times = _round_trips(LocalStore(root))
        q = statistics.quantiles(times, n=20)
        results[size] = (q[9] * 1000, q[18] * 1000, build * 1000)
        print(f"\n{size:>7,} queued (written in {filled:.1f} s): first claim (builds the queue) {build * 1000:.0f} ms")
    base = results[SIZES[0]][0]
    print(f"\nclaim + submit round trip, local store, {ROUNDS} rounds each:")
    for size, (p50, p95, _) in results.items():
        print(f"  {size:>7,} queued: p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  p50 ratio to 1k {p50 / base:4.2f}")
