"""Trends on S3 (moto's server, real HTTP, read by pyarrow's own S3 client) equal trends on a folder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pytest

from services.access.users import User
from services.aws.s3 import S3Store
from services.checkins import aggregate, trends
from services.review.labels import Label, save_label
from services.store.local import LocalStore
from tests.unit.checkins.test_trends import ADMIN, checkin, random_frame, write


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aggregate, "LISTING_SECONDS", 0.0)
    aggregate.clear_cache()
    yield
    aggregate.clear_cache()


@pytest.fixture
def both(s3_client: Any, bucket: str, store: LocalStore) -> tuple[LocalStore, S3Store]:
    """The same check-ins, in two batches, in a local folder and under a prefix of a bucket."""
    s3 = S3Store(s3_client, bucket, "pulse/prod")
    frame = random_frame(seed=3, n=300)
    for target in (store, s3):
        write(target, frame.iloc[:200], "b1")
        write(target, frame.iloc[200:], "b2")
    return store, s3


@pytest.mark.parametrize("granularity", ["day", "week"])
def test_series_on_s3_equals_local(both: tuple[LocalStore, S3Store], granularity: str) -> None:
    local, s3 = both
    manager = User("mo", "manager", ("Alpha",))
    for user, groups in ((ADMIN, None), (manager, ["Alpha", "Beta"])):
        args: dict[str, Any] = {"start": date(2025, 3, 5), "end": date(2025, 4, 2), "granularity": granularity}
        pd.testing.assert_frame_equal(
            trends.series(s3, user, groups, **args), trends.series(local, user, groups, **args)
        )
    heat_s3, heat_local = trends.heatmap(s3, ADMIN, "Beta"), trends.heatmap(local, ADMIN, "Beta")
    pd.testing.assert_frame_equal(heat_s3.cells, heat_local.cells)
    assert heat_s3.participants == heat_local.participants
    assert trends.visible_groups(s3, manager) == ["Alpha"]
    assert trends.date_range(s3, ADMIN) == trends.date_range(local, ADMIN)


def test_rows_on_s3_equal_local(both: tuple[LocalStore, S3Store]) -> None:
    local, s3 = both
    pd.testing.assert_frame_equal(trends.timeline(s3, ADMIN, "a1"), trends.timeline(local, ADMIN, "a1"))
    pd.testing.assert_frame_equal(trends.export_rows(s3, ADMIN, ["Beta"]), trends.export_rows(local, ADMIN, ["Beta"]))


def test_new_object_on_s3_invalidates_and_labels_show(s3_client: Any, bucket: str) -> None:
    s3 = S3Store(s3_client, bucket, "pulse")
    row = checkin("p", "G", "2025-05-01T10:00Z", "negative")
    write(s3, [row])
    assert trends.series(s3, ADMIN)["count"].sum() == 1
    write(s3, [checkin("p", "G", "2025-05-02T10:00Z")], "b2")
    assert trends.series(s3, ADMIN)["count"].sum() == 2
    save_label(s3, Label(row["id"], "t", "positive", "ann", "2025-05-03T10:00:00+00:00", "negative", "v1"))
    line = trends.timeline(s3, ADMIN, "p")
    assert list(line["relabelled"]) == [False, True]


def test_empty_bucket_prefix(s3_client: Any, bucket: str) -> None:
    s3 = S3Store(s3_client, bucket, "nothing-here")
    assert trends.visible_groups(s3, ADMIN) == []
    assert trends.series(s3, ADMIN).empty
