"""Scoring cost estimates (services.costs), checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from services.monitoring import costs
from services.monitoring.costs import Prices, Volume

# Round prices so that every figure below can be checked on paper:
# one serverless call = 0.1 s x 2 GB x $0.00001 + $1 / 1M = $0.000002 + $0.000001 = $0.000003.
ROUND = Prices(
    instance_per_hour=0.05,
    instances=1,
    per_gb_second=0.00001,
    memory_gb=2.0,
    per_million_requests=1.0,
    ms_per_request=100.0,
    ms_per_1k_chars=0.0,
)


def test_a_month_is_730_hours() -> None:
    assert round(costs.DAYS_PER_MONTH, 4) == 30.4167
    assert Volume(1000, 80).messages_per_month == pytest.approx(30_416.67, abs=0.01)


def test_real_time_is_instance_hours_times_price_times_instances() -> None:
    assert costs.realtime_monthly(ROUND) == pytest.approx(36.5)  # 730 h x $0.05
    assert costs.realtime_monthly(Prices(instance_per_hour=0.065, instances=2)) == pytest.approx(
        94.9
    )  # 730 x 0.065 x 2


def test_break_even_by_hand() -> None:
    # $36.50 / $0.000003 = 12,166,666.7 calls a month = 400,000 messages a day (30.4167 days)
    est = costs.estimate(ROUND, Volume(400_000, 100))
    assert est.seconds_per_request == pytest.approx(0.1)
    assert est.break_even_requests == pytest.approx(12_166_666.67, abs=0.01)
    assert est.break_even_messages_per_day == pytest.approx(400_000)
    assert est.serverless == pytest.approx(est.realtime)  # at the break-even volume they meet


def test_serverless_cost_by_hand_and_which_is_cheaper() -> None:
    below = costs.estimate(ROUND, Volume(300_000, 100))
    # 300,000 x 30.4167 = 9,125,000 calls; compute 9,125,000 x 0.1 x 2 x 0.00001 = $18.25; fees $9.125
    assert below.requests_per_month == pytest.approx(9_125_000)
    assert below.serverless_compute == pytest.approx(18.25)
    assert below.serverless_requests == pytest.approx(9.125)
    assert below.serverless == pytest.approx(27.375)
    assert below.cheaper == "serverless"
    above = costs.estimate(ROUND, Volume(500_000, 100))
    assert above.serverless == pytest.approx(45.625)  # 15,208,333 calls x $0.000003
    assert above.cheaper == "real-time"


def test_batching_divides_the_calls_and_lengthens_each() -> None:
    prices = Prices(
        instance_per_hour=0.1,
        instances=2,
        per_gb_second=0.00002,
        memory_gb=1.0,
        per_million_requests=0.2,
        ms_per_request=50.0,
        ms_per_1k_chars=10.0,
    )
    volume = Volume(1000, 100)
    one = costs.estimate(prices, volume, messages_per_request=1)
    ten = costs.estimate(prices, volume, messages_per_request=10)
    # one message a call: (50 + 10 x 0.1) ms = 0.051 s; 30,416.67 calls
    assert one.seconds_per_request == pytest.approx(0.051)
    assert one.serverless_compute == pytest.approx(30_416.667 * 0.051 * 0.00002, rel=1e-6)  # $0.031025
    assert one.serverless_requests == pytest.approx(30_416.667 * 0.2e-6, rel=1e-6)  # $0.0060833
    assert one.realtime == pytest.approx(146.0)  # 730 x 0.1 x 2
    assert one.break_even_requests == pytest.approx(146 / 1.22e-6)  # 0.051 x 0.00002 + 0.2e-6 per call
    assert one.realtime_busy_share == pytest.approx(30_416.667 * 0.051 / (730 * 3600 * 2), rel=1e-6)
    # ten messages a call: (50 + 10 x 1.0) ms = 0.06 s; 3,041.67 calls
    assert ten.seconds_per_request == pytest.approx(0.06)
    assert ten.requests_per_month == pytest.approx(3_041.6667, abs=1e-3)
    assert ten.serverless == pytest.approx(3_041.6667 * 1.4e-6, rel=1e-6)
    assert ten.break_even_messages_per_day == pytest.approx(146 / 1.4e-6 * 10 / costs.DAYS_PER_MONTH)
    assert ten.serverless < one.serverless


def test_free_serverless_never_breaks_even() -> None:
    free = Prices(per_gb_second=0.0, per_million_requests=0.0)
    assert math.isinf(costs.break_even_requests(free, 0.1))


@pytest.mark.parametrize(
    "bad",
    [{"instance_per_hour": -1.0}, {"instances": 0}, {"memory_gb": float("nan")}, {"ms_per_request": -5.0}],
)
def test_impossible_prices_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Prices(**bad)  # type: ignore[arg-type]


def test_messages_per_request_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        costs.estimate(ROUND, Volume(10, 10), messages_per_request=0)


def test_volume_from_the_last_days_of_check_ins() -> None:
    times = pd.Series(
        pd.to_datetime(
            ["2026-01-01T09:00Z", "2026-02-01T09:00Z", "2026-02-01T18:00Z", "2026-02-02T09:00Z", "2026-02-03T23:59Z"]
        )
    )
    texts = pd.Series(["x" * 1000, "a" * 10, "b" * 20, "c" * 30, "d" * 40])
    recent = costs.volume_of(times, texts, days=3)  # 1 to 3 February: 4 check-ins over 3 days
    assert recent.messages_per_day == pytest.approx(4 / 3)
    assert recent.chars_per_message == pytest.approx(25.0)
    young = costs.volume_of(times[1:], texts[1:], days=28)  # only 3 days of data: per day over 3, not 28
    assert young.messages_per_day == pytest.approx(4 / 3)
    assert costs.volume_of(times[:0], texts[:0]) == Volume(0.0, 0.0)


def test_current_volume_of_an_empty_workspace_is_zero(store) -> None:  # type: ignore[no-untyped-def]
    assert costs.current_volume(store) == Volume(0.0, 0.0)
