"""A realistic demo workspace, built with a fixed seed: six groups, dozens of participants and
90 days of daily check-ins with real texts (from the shipped corpus, held out from the bootstrap
model's training), some groups trending down and some participants having a bad week. It goes
through the same ingest path as real uploads."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pandas as pd

from services.checkins.ingest import IngestReport, ingest
from services.lifecycle.deployment import Deployer, current
from services.lifecycle.endpoint import Endpoint
from services.lifecycle.training import train_bootstrap
from services.model.corpus import split_corpus
from services.store.base import ObjectStore

DAYS = 90
SEED = 7


@dataclass(frozen=True)
class GroupPlan:
    name: str
    size: int
    negative_start: float  # share of negative check-ins on day 0
    negative_end: float  # ... and on the last day


GROUPS = (
    GroupPlan("Platform team", 9, 0.20, 0.22),
    GroupPlan("Support desk", 10, 0.20, 0.55),  # trending down
    GroupPlan("Design studio", 7, 0.35, 0.15),  # recovering
    GroupPlan("Night shift", 8, 0.30, 0.45),
    GroupPlan("Cohort 2026-A", 12, 0.15, 0.18),
    GroupPlan("Peer support circle", 6, 0.40, 0.30),
)
FIRST_NAMES = (
    "Ada Ben Chloé Dev Elif Femi Gus Hana Ivo Jun Kai Lena Milo Nia Omar Pia Quinn Rosa Sami Tao "
    "Uma Vik Wren Xena Yusuf Zoë Alba Bruno Cleo Dario Esme Finn Gaia Hugo Iris Joel Kira Luca "
    "Maya Nils Olga Paz Remy Sara Theo Ulla Vera Wim Yara Zeno Arlo Bea"
).split()


def checkins_frame(today: datetime | None = None, seed: int = SEED) -> pd.DataFrame:
    """The demo's raw check-ins (participant, group, time, text), before scoring."""
    rng = random.Random(seed)
    held_out = split_corpus().demo
    pools: dict[str, list[str]] = {"negative": [], "neutral": [], "positive": []}
    for row in held_out:
        pools[row.label].append(row.text)
    # Up to yesterday, so no check-in lies in the future whatever the hour the demo is built.
    end = (today or datetime.now(UTC)).date() - timedelta(days=1)
    start = end - timedelta(days=DAYS - 1)
    names = iter(FIRST_NAMES)
    rows = []
    for plan in GROUPS:
        members = [f"{next(names)} ({plan.name.split()[0].lower()})" for _ in range(plan.size)]
        bad_week = {rng.choice(members): rng.randrange(DAYS - 30, DAYS - 7)}
        for who in members:
            diligence = rng.uniform(0.55, 0.95)
            for d in range(DAYS):
                day = start + timedelta(days=d)
                weekend = day.weekday() >= 5
                if rng.random() > (diligence * (0.35 if weekend else 1.0)):
                    continue
                neg = plan.negative_start + (plan.negative_end - plan.negative_start) * d / (DAYS - 1)
                if who in bad_week and bad_week[who] <= d < bad_week[who] + 7:
                    neg = 0.85
                r = rng.random()
                label = "negative" if r < neg else ("neutral" if r < neg + (1 - neg) * 0.3 else "positive")
                at = datetime.combine(day, time(rng.randrange(7, 21), rng.randrange(60)), tzinfo=UTC)
                rows.append({"participant": who, "group": plan.name, "time": at, "text": rng.choice(pools[label])})
    return pd.DataFrame(rows)


def build_demo(
    store: ObjectStore,
    endpoint: Endpoint,
    *,
    threshold: float,
    today: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    deployer: Deployer | None = None,
    family: str = "auto",
) -> list[IngestReport]:
    """Fill a workspace with the demo: bootstrap model (if none is live, deployed through `deployer`
    when given) and one batch per calendar month."""
    say = progress or (lambda _msg: None)
    if current(store) is None:
        say("training the bootstrap model")
        train_bootstrap(store, by="demo", deployer=deployer, family=family)
    frame = checkins_frame(today)
    reports = []
    month = frame["time"].dt.strftime("%Y-%m")
    for key, part in frame.groupby(month, sort=True):
        say(f"ingesting {len(part)} check-ins for {key}")
        buf = io.BytesIO()
        part.to_parquet(buf, index=False)
        reports.append(ingest(store, endpoint, buf.getvalue(), f"demo-{key}.parquet", threshold=threshold, now=today))
    return reports
