"""Holiday calendars for baseline day selection, by rule, for any year.

- NERC (PJM, NYISO, ISO-NE, MISO, SPP): NERC's six "additional off-peak days": New Year's
  Day, Memorial Day (last Monday of May), Independence Day, Labor Day (first Monday of
  September), Thanksgiving (fourth Thursday of November), Christmas Day. A fixed-date
  holiday on a Sunday is observed the Monday after; on a Saturday it stays on the
  Saturday (no weekday is designated).
- CAISO: the California TOU holidays used by its utilities' DR programs: NERC's six plus
  Presidents' Day (third Monday of February) and Veterans Day (11 November); the same
  Sunday -> Monday rule, nothing moves for a Saturday.
- ERCOT: the ERCOT business-day holidays: New Year's Day, Memorial Day, Independence Day,
  Labor Day, Thanksgiving and the Friday after, and two days at Christmas. A fixed-date
  holiday on a Saturday is observed the Friday before, on a Sunday the Monday after (so
  1 January on a Saturday makes 31 December of the year before a holiday). ERCOT's CEO
  designates the two Christmas days each year; by default they are 24 and 25 December,
  moved to the nearest weekdays when either falls on a weekend (see `_ercot_christmas`).
  Pass `holidays=` to the baseline functions to use the designated dates instead.
"""

from datetime import date, timedelta
from functools import lru_cache

from aggregator.core.errors import DomainError, Problem

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)

# Market code -> the market clock's IANA zone (MISO's market runs on EST all year).
MARKET_TIME_ZONES = {
    "PJM": "America/New_York",
    "CAISO": "America/Los_Angeles",
    "NYISO": "America/New_York",
    "ERCOT": "America/Chicago",
    "MISO": "Etc/GMT+5",
    "ISO-NE": "America/New_York",
    "ISONE": "America/New_York",
    "SPP": "America/Chicago",
}

MARKET_CALENDARS = {
    "PJM": "NERC",
    "NYISO": "NERC",
    "ISO-NE": "NERC",
    "ISONE": "NERC",
    "MISO": "NERC",
    "SPP": "NERC",
    "CAISO": "CAISO",
    "ERCOT": "ERCOT",
}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _sunday_to_monday(day: date) -> date:
    return day + timedelta(days=1) if day.weekday() == SUN else day


def _weekend_to_weekday(day: date) -> date:
    if day.weekday() == SAT:
        return day - timedelta(days=1)
    return _sunday_to_monday(day)


def _nerc(year: int) -> dict[date, str]:
    return {
        _sunday_to_monday(date(year, 1, 1)): "New Year's Day",
        _last_weekday(year, 5, MON): "Memorial Day",
        _sunday_to_monday(date(year, 7, 4)): "Independence Day",
        _nth_weekday(year, 9, MON, 1): "Labor Day",
        _nth_weekday(year, 11, THU, 4): "Thanksgiving Day",
        _sunday_to_monday(date(year, 12, 25)): "Christmas Day",
    }


def _caiso(year: int) -> dict[date, str]:
    days = _nerc(year)
    days[_nth_weekday(year, 2, MON, 3)] = "Presidents' Day"
    days[_sunday_to_monday(date(year, 11, 11))] = "Veterans Day"
    return days


def _ercot_christmas(year: int) -> dict[date, str]:
    """Two weekdays: 24-25 December, or the nearest weekdays when one falls on a weekend."""
    eve = date(year, 12, 24)
    pair = {
        FRI: (eve - timedelta(days=1), eve),  # 25th a Saturday: Thu 23, Fri 24
        SAT: (eve - timedelta(days=1), eve + timedelta(days=2)),  # Fri 23, Mon 26
        SUN: (eve + timedelta(days=1), eve + timedelta(days=2)),  # Mon 25, Tue 26
    }.get(eve.weekday(), (eve, eve + timedelta(days=1)))
    return {pair[0]: "Christmas holiday", pair[1]: "Christmas holiday"}


def _ercot(year: int) -> dict[date, str]:
    thanksgiving = _nth_weekday(year, 11, THU, 4)
    return {
        _weekend_to_weekday(date(year, 1, 1)): "New Year's Day",
        _last_weekday(year, 5, MON): "Memorial Day",
        _weekend_to_weekday(date(year, 7, 4)): "Independence Day",
        _nth_weekday(year, 9, MON, 1): "Labor Day",
        thanksgiving: "Thanksgiving Day",
        thanksgiving + timedelta(days=1): "Day after Thanksgiving",
        **_ercot_christmas(year),
    }


_RULES = {"NERC": _nerc, "CAISO": _caiso, "ERCOT": _ercot}


class UnknownCalendar(DomainError):
    """No holiday calendar is kept for the market: nothing that depends on holidays can be computed."""

    status = 422


def calendar_for(market: str) -> str:
    try:
        return MARKET_CALENDARS[market.upper()]
    except (KeyError, AttributeError):
        raise UnknownCalendar(
            Problem(
                "unknown_market",
                f"No holiday calendar for market {market!r}; known: {', '.join(sorted(MARKET_CALENDARS))}.",
                "market",
            )
        ) from None


@lru_cache(maxsize=256)
def _year(calendar: str, year: int) -> dict[date, str]:
    return _RULES[calendar](year)


def holidays_between(*, market: str, first: date, last: date) -> dict[date, str]:
    """Holidays (observed dates) from `first` to `last` inclusive, date -> name."""
    calendar = calendar_for(market)
    found = {}
    # A year's observed New Year's Day can fall on 31 December of the year before.
    for year in range(first.year, last.year + 2):
        for day, name in _year(calendar, year).items():
            if first <= day <= last:
                found[day] = name
    return dict(sorted(found.items()))


def holidays_in(*, market: str, year: int) -> dict[date, str]:
    """The holidays observed in calendar year `year`."""
    return holidays_between(market=market, first=date(year, 1, 1), last=date(year, 12, 31))
