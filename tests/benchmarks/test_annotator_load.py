"""20 annotators at once on one review queue, each on their own LabelingService (as on 20 app
replicas), on a local folder and on S3 (moto's server): every item gets exactly the labels it
needs, nothing is lost or labelled twice by one person. Throughput and claim+submit latency
against one annotator alone, in the same run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from services.aws.s3 import S3Store
from services.review.items import waiting_entries
from services.review.labeling import LabelingService
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.benchmarks.results import write_result
from tests.unit.review.test_labeling import check_all_labelled_once, make_item, queue

DOUBLE = 0.05
LABELS = ("negative", "neutral", "positive", "unclear")


def label_all(store: ObjectStore, annotators: int, double: float, deadline_s: float = 600) -> tuple[float, list[float]]:
    """Annotators label until the queue is empty; the wall time and every claim+submit latency."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        svc = LabelingService(store, double_share=double, refresh_seconds=0.5)
        who = f"annotator-{n:02d}"
        end = time.monotonic() + deadline_s
        mine: list[float] = []
        try:
            while time.monotonic() < end:
                started = time.perf_counter()
                item = svc.claim_next(who)
                if item is None:
                    if not waiting_entries(store):
                        break
                    time.sleep(0.2)
                    continue
                svc.submit(item.id, LABELS[hash((item.id, who)) % 4], who)
                mine.append(time.perf_counter() - started)
            else:
                raise TimeoutError(f"{who} still working after {deadline_s} s")
        except BaseException as exc:
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(annotators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[:3]
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(name: str, make_store: Any, items: int) -> list[list[Any]]:
    rows = []
    base_rate = 0.0
    for annotators in (1, 20):
        store = make_store(str(annotators))
        ids = queue(store, [make_item(i) for i in range(items)])
        double = DOUBLE if annotators > 1 else 0.0  # one person cannot give an item its second label
        wall, latencies = label_all(store, annotators, double)
        doubles = check_all_labelled_once(store, ids, double)
        rate = (items + doubles) / wall
        base_rate = base_rate or rate
        rows.append(
            [
                name,
                annotators,
                items,
                items + doubles,
                round(rate, 1),
                round(1000 * pct(latencies, 0.5), 1),
                round(1000 * pct(latencies, 0.99), 1),
                f"{rate / base_rate:.1f}x",
            ]
        )
    return rows


def test_twenty_annotators(tmp_path: Path, s3_client: Any, bucket: str) -> None:
    rows = measure("local folder", lambda tag: LocalStore(tmp_path / tag), 2000)
    rows += measure(
        "S3 (moto server)",
        lambda tag: S3Store(s3_client, bucket, tag.replace(" ", "-").replace("(", "").replace(")", "")),
        500,
    )
    print("\nannotator load: labels/s and claim+submit latency, 1 vs 20 annotators (each its own replica)")
    for r in rows:
        print(
            f"  {r[0]:<18} {r[1]:>2} annotators  {r[2]:>5} items  {r[3]:>5} labels  {r[4]:>7}/s  "
            f"p50 {r[5]:>7} ms  p99 {r[6]:>7} ms  {r[7]}"
        )
    write_result(
        "annotator_load",
        "20 concurrent annotators on one review queue (each on its own LabelingService, as on 20 replicas)",
        ["store", "annotators", "items", "labels", "labels/s", "p50 ms", "p99 ms", "vs 1 annotator"],
        rows,
        [
            f"With 20 annotators {DOUBLE:.0%} of items need two (alone: none); every item got exactly the labels "
            "it needs, none was labelled twice by one person, nothing was left queued or claimed.",
            "Latency is claim + submit for one item, as the review page does on a key press.",
        ],
    )
