"""A realistic demo workspace, built with a fixed seed: six groups, dozens of participants and
90 days of daily check-ins written in their program's voice (Pulse's check-in corpus, never its gold
part), some groups trending down, one participant in each group having a bad week, and one crisis
message that raises a critical alert. It goes through the same ingest path as real uploads."""

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
from services.model.corpus import checkin_part
from services.monitoring.crisis import find_crisis
from services.monitoring.rules import default_phrases
from services.store.base import ObjectStore

DAYS = 90
SEED = 7


@dataclass(frozen=True)
class GroupPlan:
    name: str
    program: str  # whose check-ins its members write (services/model/data/checkins/)
    size: int
    negative_start: float  # share of negative check-ins on day 0
    negative_end: float  # ... and on the last day


GROUPS = (
    GroupPlan("Platform team", "engineering-team", 9, 0.20, 0.22),
    GroupPlan("Support desk", "support-desk", 10, 0.20, 0.55),  # trending down
    GroupPlan("Data team", "engineering-team", 7, 0.35, 0.15),  # recovering
    GroupPlan("Night shift", "night-nurses", 8, 0.30, 0.45),
    GroupPlan("Cohort 2026-A", "student-cohort", 12, 0.15, 0.18),
    GroupPlan("Peer support circle", "peer-support", 6, 0.40, 0.30),
)
FIRST_NAMES = (
    "Ada Ben Chloé Dev Elif Femi Gus Hana Ivo Jun Kai Lena Milo Nia Omar Pia Quinn Rosa Sami Tao "
    "Uma Vik Wren Xena Yusuf Zoë Alba Bruno Cleo Dario Esme Finn Gaia Hugo Iris Joel Kira Luca "
    "Maya Nils Olga Paz Remy Sara Theo Ulla Vera Wim Yara Zeno Arlo Bea"
).split()


UNCLEAR_SHARE = 0.03  # another language, noise: they go to review and are kept out of training
CRISIS_GROUP = "Support desk"  # its bad-week participant writes one crisis message


def _pools() -> tuple[dict[tuple[str, str], list[str]], dict[str, list[str]]]:
    """Texts per (program, label) from the check-in corpus's every-day messages (demo and train
    parts, never gold), and per program the crisis messages the crisis alert recognises."""
    phrases = default_phrases()
    pools: dict[tuple[str, str], list[str]] = {}
    crisis: dict[str, list[str]] = {}
    for part in ("demo", "train"):
        rows = checkin_part(part, source=None, sentiment_only=False)
        found = find_crisis([r.text for r in rows], phrases)
        for r, finding in zip(rows, found, strict=True):
            if r.crisis:
                if finding is not None:
                    crisis.setdefault(r.program, []).append(r.text)
                continue  # crisis language only where the story puts it
            if r.source == "checkins":  # the crisis part's look-alikes are a test set, rarer in real life
                pools.setdefault((r.program, r.label), []).append(r.text)
    return pools, crisis


def checkins_frame(today: datetime | None = None, seed: int = SEED) -> pd.DataFrame:
    """The demo's raw check-ins (participant, group, time, text), before scoring."""
    rng = random.Random(seed)
    pools, crisis = _pools()
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
            recent: list[str] = []  # what they wrote lately: nobody sends the same note twice in a month
            crisis_due = plan.name == CRISIS_GROUP and who in bad_week
            for d in range(DAYS):
                day = start + timedelta(days=d)
                weekend = day.weekday() >= 5
                if rng.random() > (diligence * (0.35 if weekend else 1.0)):
                    continue
                neg = plan.negative_start + (plan.negative_end - plan.negative_start) * d / (DAYS - 1)
                if who in bad_week and bad_week[who] <= d < bad_week[who] + 7:
                    neg = 0.85
                r = rng.random()
                label = "negative" if r < neg else ("neutral" if r < neg + (1 - neg) * 0.4 else "positive")
                if rng.random() < UNCLEAR_SHARE:
                    label = "unclear"
                pool = [t for t in pools[(plan.program, label)] if t not in recent] or pools[(plan.program, label)]
                text = rng.choice(pool)
                if crisis_due and d >= bad_week[who] + 4:  # their first check-in late in the bad week
                    text, crisis_due = rng.choice(crisis[plan.program]), False
                recent = [*recent[-29:], text]
                at = datetime.combine(day, time(rng.randrange(7, 21), rng.randrange(60)), tzinfo=UTC)
                rows.append({"participant": who, "group": plan.name, "time": at, "text": text})
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
