"""What scoring costs a month: a real-time endpoint (instances billed by the hour, busy or idle)
against serverless inference (billed per request and per GB-second of compute), with optional
batching of several messages per request, and the volume at which the two cost the same.

The prices are editable assumptions in the shape of AWS SageMaker's price list (us-east-1, seen
2024–25), not quotes: check the pricing page for your region before deciding anything. Data
processing charges (per GB in and out) apply to both options alike, so they are left out: they do
not change which option is cheaper or where the break-even lies.

Everything is a pure function of `Prices` and `Volume` except `current_volume`, which reads the
scored check-ins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from services.checkins.partitions import read_scored
from services.store.base import ObjectStore

HOURS_PER_MONTH = 730.0  # AWS's convention: 365 days x 24 h / 12
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


@dataclass(frozen=True)
class Prices:
    """Editable price and performance assumptions (not quotes)."""

    instance_per_hour: float = 0.065  # a real-time ml.t2.medium-class instance
    instances: int = 1
    hours_per_month: float = HOURS_PER_MONTH
    per_gb_second: float = 0.00002  # serverless compute
    memory_gb: float = 2.0  # serverless memory size (SageMaker offers 1 to 6 GB)
    per_million_requests: float = 0.20
    ms_per_request: float = 30.0  # fixed time of one warm call: transport, parsing, the model call
    ms_per_1k_chars: float = 2.0  # preprocessing and scoring time per 1,000 characters of text

    def __post_init__(self) -> None:
        for name in ("instance_per_hour", "hours_per_month", "per_gb_second", "memory_gb", "per_million_requests"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of at least 0, not {value}")
        if self.ms_per_request < 0 or self.ms_per_1k_chars < 0:
            raise ValueError("request times must be at least 0")
        if self.instances < 1:
            raise ValueError("a real-time endpoint needs at least one instance")


@dataclass(frozen=True)
class Volume:
    """How much there is to score."""

    messages_per_day: float
    chars_per_message: float

    @property
    def messages_per_month(self) -> float:
        return self.messages_per_day * DAYS_PER_MONTH


@dataclass(frozen=True)
class CostEstimate:
    """Monthly cost of each option at one volume, and where they break even (all in dollars)."""

    messages_per_month: float
    messages_per_request: int
    requests_per_month: float
    seconds_per_request: float
    realtime: float
    serverless_compute: float
    serverless_requests: float
    realtime_busy_share: float  # share of the instances' hours spent scoring (above 1: add instances)
    break_even_requests: float  # requests a month at which serverless costs as much as real-time
    break_even_messages_per_day: float

    @property
    def serverless(self) -> float:
        return self.serverless_compute + self.serverless_requests

    @property
    def cheaper(self) -> Literal["real-time", "serverless"]:
        return "serverless" if self.serverless < self.realtime else "real-time"


def requests_per_month(volume: Volume, messages_per_request: int = 1) -> float:
    """Calls to the endpoint a month when `messages_per_request` messages travel together."""
    if messages_per_request < 1:
        raise ValueError("messages_per_request must be at least 1")
    return volume.messages_per_month / messages_per_request


def seconds_per_request(prices: Prices, chars_per_message: float, messages_per_request: int = 1) -> float:
    """Time one call takes: the fixed part plus the time for the characters it carries."""
    chars = chars_per_message * messages_per_request
    return (prices.ms_per_request + prices.ms_per_1k_chars * chars / 1000) / 1000


def realtime_monthly(prices: Prices) -> float:
    """Instance-hours x price per hour x instances: paid whether it scores or idles."""
    return prices.hours_per_month * prices.instance_per_hour * prices.instances


def serverless_per_request(prices: Prices, seconds: float) -> float:
    """What one serverless call costs: its GB-seconds of compute plus the per-request fee."""
    return seconds * prices.memory_gb * prices.per_gb_second + prices.per_million_requests / 1_000_000


def serverless_monthly(prices: Prices, requests: float, seconds: float) -> float:
    """Serverless cost of `requests` calls of `seconds` each."""
    return requests * serverless_per_request(prices, seconds)


def break_even_requests(prices: Prices, seconds: float) -> float:
    """Requests a month at which serverless costs as much as the real-time endpoint (inf when a
    serverless call is free)."""
    each = serverless_per_request(prices, seconds)
    return math.inf if each == 0 else realtime_monthly(prices) / each


def estimate(prices: Prices, volume: Volume, messages_per_request: int = 1) -> CostEstimate:
    """Both options' monthly cost at `volume`, with `messages_per_request` messages per call."""
    requests = requests_per_month(volume, messages_per_request)
    seconds = seconds_per_request(prices, volume.chars_per_message, messages_per_request)
    compute = requests * seconds * prices.memory_gb * prices.per_gb_second
    fees = requests * prices.per_million_requests / 1_000_000
    capacity = prices.hours_per_month * 3600 * prices.instances
    break_even = break_even_requests(prices, seconds)
    return CostEstimate(
        messages_per_month=volume.messages_per_month,
        messages_per_request=messages_per_request,
        requests_per_month=requests,
        seconds_per_request=seconds,
        realtime=realtime_monthly(prices),
        serverless_compute=compute,
        serverless_requests=fees,
        realtime_busy_share=requests * seconds / capacity if capacity else math.inf,
        break_even_requests=break_even,
        break_even_messages_per_day=break_even * messages_per_request / DAYS_PER_MONTH,
    )


def volume_of(times: pd.Series, texts: pd.Series, *, days: int = 28) -> Volume:
    """Check-ins per day and characters per check-in over the last `days` days of `times` (fewer
    if the data is younger); an empty series gives a zero volume."""
    if times.empty:
        return Volume(0.0, 0.0)
    dates = times.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    last = dates.max()
    span = min(days, (last - dates.min()).days + 1)
    recent = dates >= last - pd.Timedelta(days=span - 1)
    return Volume(float(recent.sum()) / span, float(texts[recent].str.len().mean()))


def current_volume(store: ObjectStore, *, days: int = 28) -> Volume:
    """The volume of the scored check-ins of the last `days` days (two columns read)."""
    frame = read_scored(store, columns=["time", "text"])
    return volume_of(frame["time"], frame["text"].astype(str), days=days)
