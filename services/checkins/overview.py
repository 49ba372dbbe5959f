"""The workspace at a glance, as one signed-in user may see it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from services.access.users import User
from services.checkins.partitions import read_scored
from services.lifecycle.deployment import Deployment, current
from services.review.items import waiting_entries
from services.store.base import ObjectStore


@dataclass(frozen=True)
class Overview:
    checkins: int
    participants: int
    groups: int
    first_day: str | None
    last_day: str | None
    queue: int
    deployment: Deployment | None
    daily: pd.DataFrame  # date, label, count (for the user's groups)


def group_names(store: ObjectStore) -> list[str]:
    """All groups that have check-ins, sorted."""
    return sorted(read_scored(store, ["group"])["group"].unique().tolist())


def queue_size(store: ObjectStore, groups: list[str] | None = None) -> int:
    """Check-ins waiting for a human; with `groups`, only those of these groups (the review index
    entries carry each item's group)."""
    waiting = waiting_entries(store)
    if groups is None:
        return len(waiting)
    wanted = set(groups)
    return sum(1 for entry in waiting.values() if entry.group in wanted)


def workspace_overview(store: ObjectStore, user: User) -> Overview:
    """Counts for the user's scope: admins and annotators see totals, managers their groups."""
    groups = None if user.role != "manager" else list(user.groups)
    frame = read_scored(store, ["participant", "group", "time", "label"], groups=groups)
    daily = (
        frame.assign(date=frame["time"].dt.strftime("%Y-%m-%d"))
        .groupby(["date", "label"], as_index=False)
        .size()
        .rename(columns={"size": "count"})
    )
    return Overview(
        checkins=len(frame),
        participants=frame["participant"].nunique(),
        groups=frame["group"].nunique(),
        first_day=daily["date"].min() if len(daily) else None,
        last_day=daily["date"].max() if len(daily) else None,
        queue=queue_size(store, groups),
        deployment=current(store),
        daily=daily,
    )
