"""Synthetic interval data for the baseline tests: every interval of a run of local days,
stepping in UTC (so a 23-hour day has 23 hourly readings and a 25-hour day 25)."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from settlement.baselines import IntervalReadings

NEW_YORK = "America/New_York"
LOS_ANGELES = "America/Los_Angeles"
NY = ZoneInfo(NEW_YORK)
LA = ZoneInfo(LOS_ANGELES)
UTC = UTC


def at(y: int, m: int, d: int, h: int = 0, minute: int = 0, *, tz=NY, fold: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=tz, fold=fold)


def utc(y: int, m: int, d: int, h: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=UTC)


def series(
    load: Callable[[datetime], float | None], *, first: date, last: date, tz=NY, minutes: int = 60
) -> IntervalReadings:
    """kWh per interval = load(local start); None leaves the interval without a reading."""
    t = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC)
    following = last + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
    step = timedelta(minutes=minutes)
    starts, kwh = [], []
    while t < end:
        value = load(t.astimezone(tz))
        if value is not None:
            starts.append(int(t.timestamp()))
            kwh.append(value)
        t += step
    return IntervalReadings(np.array(starts, dtype=np.int64), np.array(kwh, dtype=np.float64))


def profile(*, default: float = 5.0, days: dict | None = None, hours: dict | None = None) -> Callable:
    """Load by day (date -> kWh each interval) with exceptions by (date, hour) -> kWh or None (no reading)."""
    days, hours = days or {}, hours or {}

    def load(local: datetime):
        key = (local.date(), local.hour)
        if key in hours:
            return hours[key]
        return days.get(local.date(), default)

    return load


def values(array) -> list:
    """Result array as a list with None for NaN, rounded so hand arithmetic compares exactly."""
    return [None if x != x else round(float(x), 9) for x in array]


def approx(expected):
    return pytest.approx(expected, abs=1e-9)
