"""Ingest throughput on 100k check-ins against the raw fastText predict rate, in one run."""

from __future__ import annotations

import io
import time

import pandas as pd

from services.checkins.ingest import ingest
from services.lifecycle.deployment import require_current
from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.registry import fetch_model
from services.model.corpus import split_corpus
from services.model.fasttext import fasttext_line, train
from services.model.params import TrainParams
from services.model.text import preprocess
from services.store.local import LocalStore
from tests.benchmarks.datasets import airline_checkins

N = 100_000


def test_ingest_throughput(bootstrap_store: LocalStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = airline_checkins(N)
    data = pd.DataFrame(rows).to_csv(index=False).encode()
    sample = [r["text"] for r in rows]

    version = require_current(bootstrap_store).version
    deployed = fetch_model(bootstrap_store, version, tmp_path / "cache")
    # The baseline is fastText's own predict: train the bootstrap corpus's fastText model for it
    # (the deployed bootstrap model may be of the linear family).
    model = train([fasttext_line(r.label, r.text) for r in split_corpus().train], TrainParams())
    ft = model._ft
    raw_lines = [t.replace("\n", " ") for t in sample]

    t0 = time.perf_counter()
    ft.predict(raw_lines, k=-1)
    raw_predict = time.perf_counter() - t0

    t0 = time.perf_counter()
    prepared = [preprocess(t) for t in sample]
    prep = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.predict_prepared(prepared)
    predict_prepared = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.predict(sample)
    scoring = time.perf_counter() - t0

    t0 = time.perf_counter()
    deployed.predict(sample)
    deployed_scoring = time.perf_counter() - t0

    import shutil

    ws = LocalStore(tmp_path / "ws")
    shutil.copytree(bootstrap_store.root, ws.root)
    endpoint = LocalEndpoint(ws, tmp_path / "cache2")
    t0 = time.perf_counter()
    report = ingest(ws, endpoint, data, "bench.csv", threshold=0.6)
    full = time.perf_counter() - t0
    assert report.accepted == N

    def rate(seconds: float) -> str:
        return f"{N / seconds:>10,.0f}/s"

    out = io.StringIO()
    print(f"\ningest benchmark: {N:,} check-ins (airline texts), 1 process", file=out)
    print(f"  raw fastText predict (k=-1, raw text)   {rate(raw_predict)}  1.00x  (baseline)", file=out)
    print(f"  preprocess only                         {rate(prep)}  {raw_predict / prep:.2f}x", file=out)
    print(f"  fastText predict on preprocessed text   {rate(predict_prepared)}", file=out)
    print(f"  fastText scoring (preprocess + predict) {rate(scoring)}  {raw_predict / scoring:.2f}x", file=out)
    print(
        f"  deployed {deployed.family} model scoring{' ' * (14 - len(deployed.family))}"
        f"{rate(deployed_scoring)}  {raw_predict / deployed_scoring:.2f}x",
        file=out,
    )
    print(f"  full ingest (parse, score, Parquet,     {rate(full)}  {raw_predict / full:.2f}x", file=out)
    print(f"    {report.unrecognized:,} review items, {len(report.dates)} partitions)", file=out)
    print(out.getvalue())
