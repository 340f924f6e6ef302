"""When a market stops taking an offer, and what window an offer covers (pure: plain values, no ORM).

Day-ahead
    An offer covers an operating day: the market's local midnight to the next (23 hours on the spring DST day and
    25 on the autumn one; always 24 for MISO, whose clock is Eastern Standard Time all year), in hourly intervals.
    Its deadline is a local time some days before the operating day (the submission day), stated in the market's
    clock or in the rule's own (MISO closes at 10:30 Eastern *prevailing* time). The rule is chosen by the day type
    of the submission day: a market holiday, else a weekday or a weekend day; a row for that type wins over the
    `any` row. Each row has its own days_before, so a row applies when its own submission day has its type.

Real-time
    An offer covers an operating hour (local hour start, in UTC), in the market's real-time intervals. Its deadline
    is minutes before the hour starts; the day type is that of the local date the deadline falls on.

Precedence of day types: holiday, then weekday or weekend, then any. All instants are aware, in UTC.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_AHEAD = "day_ahead"
REAL_TIME = "real_time"
ANY, WEEKDAY, WEEKEND, HOLIDAY = "any", "weekday", "weekend", "holiday"
_PRECEDENCE = {HOLIDAY: 0, WEEKDAY: 1, WEEKEND: 1, ANY: 2}


@dataclass(frozen=True)
class DeadlineRule:
    """A row of OfferDeadline as plain values."""

    market_kind: str
    day_type: str = ANY
    local_time: time | None = None
    days_before: int = 1
    minutes_before: int | None = None
    time_zone: str = ""


class NoDeadline(LookupError):
    """The market has no rule for this kind of offer (and day type)."""


def day_type_of(day: date, holidays: Collection[date]) -> str:
    if day in holidays:
        return HOLIDAY
    return WEEKEND if day.weekday() >= 5 else WEEKDAY


def _matches(rule: DeadlineRule, day: date, holidays: Collection[date]) -> bool:
    return rule.day_type == ANY or rule.day_type == day_type_of(day, holidays)


def _choose(candidates: Iterable[tuple[DeadlineRule, datetime, date]], holidays: Collection[date]) -> datetime:
    applicable = [(r, at) for r, at, day in candidates if _matches(r, day, holidays)]
    if not applicable:
        raise NoDeadline("no offer deadline applies")
    applicable.sort(key=lambda pair: _PRECEDENCE.get(pair[0].day_type, 3))
    return applicable[0][1]


def local_instant(day: date, at: time, zone: str) -> datetime:
    """`at` on `day` in `zone`, as UTC. A wall time the clock skips (spring) is read as the instant after the gap,
    a repeated one (autumn) as its first occurrence."""
    # PEP 495: fold=0 reads a skipped wall time with the offset before the change (landing after the gap) and a
    # repeated one as its first occurrence.
    return datetime.combine(day, at).replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)


def day_ahead_deadline(
    operating_day: date, rules: Iterable[DeadlineRule], *, market_time_zone: str, holidays: Collection[date] = ()
) -> datetime:
    """The instant the day-ahead market stops taking offers for `operating_day` (a market-local date)."""
    candidates = []
    for rule in rules:
        if rule.market_kind != DAY_AHEAD or rule.local_time is None:
            continue
        submission_day = operating_day - timedelta(days=rule.days_before)
        at = local_instant(submission_day, rule.local_time, rule.time_zone or market_time_zone)
        candidates.append((rule, at, submission_day))
    return _choose(candidates, holidays)


def real_time_deadline(
    hour_start: datetime, rules: Iterable[DeadlineRule], *, market_time_zone: str, holidays: Collection[date] = ()
) -> datetime:
    """The instant the real-time market stops taking offers for the operating hour starting at `hour_start`."""
    candidates = []
    for rule in rules:
        if rule.market_kind != REAL_TIME or rule.minutes_before is None:
            continue
        at = hour_start.astimezone(UTC) - timedelta(minutes=rule.minutes_before)
        clock = ZoneInfo(rule.time_zone or market_time_zone)
        candidates.append((rule, at, at.astimezone(clock).date()))
    return _choose(candidates, holidays)


def day_ahead_window(operating_day: date, *, market_time_zone: str) -> tuple[datetime, datetime]:
    """[start, end) of a market-local operating day, in UTC."""
    start = local_instant(operating_day, time(0), market_time_zone)
    end = local_instant(operating_day + timedelta(days=1), time(0), market_time_zone)
    return start, end


def real_time_window(hour_start: datetime) -> tuple[datetime, datetime]:
    start = hour_start.astimezone(UTC)
    return start, start + timedelta(hours=1)


def interval_starts(start: datetime, end: datetime, minutes: int) -> list[datetime]:
    """Starts of the [start, end) window's intervals of `minutes` (counted in elapsed time, so DST days get 23 or
    25 hourly intervals)."""
    step = timedelta(minutes=minutes)
    starts = []
    at = start.astimezone(UTC)
    while at < end:
        starts.append(at)
        at += step
    return starts


def operating_day_of(instant: datetime, *, market_time_zone: str) -> date:
    return instant.astimezone(ZoneInfo(market_time_zone)).date()


def hour_floor(instant: datetime) -> datetime:
    """The start of the (UTC, hence every US market's local) hour containing `instant`; all the seeded markets'
    offsets are whole hours."""
    at = instant.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0)
