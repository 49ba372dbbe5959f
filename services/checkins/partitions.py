"""Scored check-ins in the store: `checkins/date=YYYY-MM-DD/<batch>.parquet`."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from services.store import keys
from services.store.base import ObjectStore

PREFIX = keys.CHECKINS
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("participant", pa.string()),
        ("group", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("text", pa.string()),
        ("label", pa.string()),
        ("confidence", pa.float32()),
        ("p_negative", pa.float32()),
        ("p_neutral", pa.float32()),
        ("p_positive", pa.float32()),
        ("model_version", pa.string()),
        ("batch", pa.string()),
        ("extra", pa.string()),
    ]
)


def partition_key(date: str, batch: str) -> str:
    return f"{PREFIX}date={date}/{batch}.parquet"


def partition_files(store: ObjectStore) -> list[str]:
    """Every Parquet file of scored check-ins, in date order."""
    return [k for k in store.list(PREFIX) if k.endswith(".parquet")]


def partitions(frame: pd.DataFrame) -> Iterator[tuple[str, bytes]]:
    """(date, Parquet bytes) for each UTC day of the check-ins in `frame`."""
    table = pa.Table.from_pandas(frame[SCHEMA.names], schema=SCHEMA, preserve_index=False)
    days = pc.strftime(table.column("time"), format="%Y-%m-%d")
    for day in pc.unique(days).to_pylist():
        buf = io.BytesIO()
        pq.write_table(table.filter(pc.equal(days, day)), buf, compression="zstd")
        yield str(day), buf.getvalue()


def read_scored(
    store: ObjectStore, columns: Sequence[str] | None = None, groups: Sequence[str] | None = None
) -> pd.DataFrame:
    """Scored check-ins as one frame; `groups` (when given) keeps only those groups."""
    cols = list(columns) if columns else SCHEMA.names
    need = cols if groups is None or "group" in cols else [*cols, "group"]
    tables = []
    for key in partition_files(store):
        table = pq.read_table(io.BytesIO(store.get(key)), columns=need)
        if groups is not None:
            table = table.filter(pc.is_in(table.column("group"), pa.array(list(groups), pa.string())))
        tables.append(table)
    if not tables:
        return SCHEMA.empty_table().select(cols).to_pandas()
    return pa.concat_tables(tables).select(cols).to_pandas()
