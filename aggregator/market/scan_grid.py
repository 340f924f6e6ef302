"""A market's telemetry scan grid: the instants a resource's real-time value stands for.

The grid is whole multiples of the scan rate counted from the Unix epoch, in UTC. For the rates markets use
(divisors of an hour: 2, 4, 5, 10, 15, 30 s, 1 min, 5 min ...) these are the same instants as multiples counted
from local midnight in any zone whose offset is whole quarter-hours, and a daylight saving change moves no
instant: the day of the change simply has 23 or 25 hours of them. Pure: plain datetimes in, datetimes out.
"""

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _step(scan_seconds: int) -> timedelta:
    if scan_seconds < 1:
        raise ValueError("The scan rate is a positive number of seconds.")
    return timedelta(seconds=scan_seconds)


def grid_instant(moment: datetime, scan_seconds: int) -> datetime:
    """The latest grid instant at or before `moment` (an aware datetime), in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("A scan instant needs its UTC offset.")
    step = _step(scan_seconds)
    return EPOCH + step * ((moment - EPOCH) // step)


def next_grid_instant(moment: datetime, scan_seconds: int) -> datetime:
    """The first grid instant strictly after `moment`."""
    return grid_instant(moment, scan_seconds) + _step(scan_seconds)
