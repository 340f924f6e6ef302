"""Match-day baselines (PJM Match Day 3-day average, ERCOT matching day pair), hand-computed on hourly data in
New York. The weekdays before Tue 15 July 2025, most recent first: 14, 11, 10, 9, 8, 7, 3, 2, 1 (4 July is a
holiday)."""

from datetime import date

from settlement.baselines import compute_baseline
from settlement.baselines.results import BASELINE_UNAVAILABLE, BELOW_MIN_DAYS
from tests.settlement.baseline_fixtures import NEW_YORK, at, series, values

JUL = {d: date(2025, 7, d) for d in range(1, 32)}


def by_day(outside: dict, during: dict, *, default=20.0, event_hours=range(14, 18), extra=None):
    """kWh by (day, hour): `during` in the event hours, `outside` otherwise; `extra` (day, hour) overrides."""
    extra = extra or {}

    def load(local):
        key = (local.date(), local.hour)
        if key in extra:
            return extra[key]
        table = during if local.hour in event_hours else outside
        return table.get(local.date(), default)

    return load


def match(method, load, first=date(2025, 5, 25), **kw):
    return compute_baseline(
        method=method,
        readings=series(load, first=first, last=JUL[15]),
        event_start=at(2025, 7, 15, 14),
        event_end=at(2025, 7, 15, 18),
        time_zone=NEW_YORK,
        market="PJM",
        **kw,
    )


def test_pjm_match_day_averages_the_three_days_closest_outside_the_event():
    """Outside the event the event day is 5 kWh an hour (13:00 and 18:00 are 100, but the hour either side is not
    compared). Candidates' levels outside the event: 14th 9, 11th 5.5, 10th 4, 9th 5, 8th 7, 7th 4.8, others 20.
    Closest: the 9th (0 off), the 7th (0.2), the 11th (0.5); their event hours 12, 9 and 6 -> 9 kW."""
    outside = {JUL[15]: 5, JUL[14]: 9, JUL[11]: 5.5, JUL[10]: 4, JUL[9]: 5, JUL[8]: 7, JUL[7]: 4.8}
    during = {JUL[15]: 2, JUL[9]: 12, JUL[7]: 9, JUL[11]: 6, JUL[10]: 50, JUL[14]: 50}
    result = match("pjm-match-day", by_day(outside, during, extra={(JUL[15], 13): 100, (JUL[15], 18): 100}))
    assert result.days_used == (JUL[11], JUL[9], JUL[7])
    assert values(result.baseline_kw) == [9.0] * 4 and values(result.reduction_kw) == [7.0] * 4
    assert result.skipped[JUL[14]] == result.skipped[JUL[10]] == "not_closest"
    assert result.skipped[JUL[4]] == "holiday" and result.adjustment.kind == "none"


def test_ercot_matching_day_pair_compares_the_day_before_too():
    """The 11th and the 10th both match the event day (5 outside the event). The day before the event (the 14th)
    is 3 all day; before the 10th is the 9th, also 3 all day; before the 11th is the 10th, not. The pair picks the
    10th (event hours 8 kW); without the day before, the tie goes to the more recent 11th (20 kW)."""
    outside = {JUL[15]: 5, JUL[14]: 3, JUL[11]: 5, JUL[10]: 5, JUL[9]: 3, JUL[8]: 9}
    during = {JUL[15]: 2, JUL[14]: 3, JUL[11]: 20, JUL[10]: 8, JUL[9]: 3, JUL[8]: 9}
    load = by_day(outside, during, default=9.0)
    pair = match("ercot-matching-day-pair", load)
    assert pair.days_used == (JUL[10],) and values(pair.baseline_kw) == [8.0] * 4
    single = match("pjm-match-day", load, params={"match_days": 1, "min_days": 1})
    assert single.days_used == (JUL[11],) and values(single.baseline_kw) == [20.0] * 4


def test_on_the_25_hour_day_the_wall_clock_slots_are_matched():
    """Sun 2 November 2025 (01:00 repeats); every day's load is its local hour, so every Sunday matches exactly
    and the three most recent are averaged: 14 and 15 kW."""
    result = compute_baseline(
        method="pjm-match-day",
        readings=series(lambda local: float(local.hour), first=date(2025, 9, 1), last=date(2025, 11, 2)),
        event_start=at(2025, 11, 2, 14),
        event_end=at(2025, 11, 2, 16),
        time_zone=NEW_YORK,
        market="PJM",
    )
    assert result.days_used == (date(2025, 10, 26), date(2025, 10, 19), date(2025, 10, 12))
    assert values(result.baseline_kw) == [14.0, 15.0]


def test_with_fewer_candidate_days_than_the_minimum_there_is_no_baseline():
    """Data from the 10th: three like days (14th, 11th, 10th) are enough; from the 11th, two are not."""
    assert len(match("pjm-match-day", by_day({}, {}, default=5.0), first=JUL[10]).days_used) == 3
    short = match("pjm-match-day", by_day({}, {}, default=5.0), first=JUL[11])
    assert {BASELINE_UNAVAILABLE, BELOW_MIN_DAYS} <= short.flags and values(short.baseline_kw) == [None] * 4
