"""Interval readings on the market's local day grid.

A site's readings become one vector over every real interval of a run of local days
(stepping in UTC from the first local midnight), and from it a days x wall-clock-slots
matrix, so that "the same interval on another day" is one index away. On a 23-hour day
the skipped hour's slots do not exist (they are marked absent); on a 25-hour day the
repeated hour's two intervals share their wall-clock slots, and the matrix holds the mean
of the two (a missing one makes the slot missing).

Everything that depends only on the time zone, the dates and the interval length (the
grid) is built once and cached; per site there is one vectorised scatter.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from settlement.baselines.errors import BaselineError

STEPS = (300, 900, 3600)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


@dataclass(frozen=True, eq=False)
class IntervalReadings:
    """One meter's interval energy: `starts` in epoch seconds (int64), `kwh` per interval
    (float64, NaN for a reading known to be missing). `interval_seconds`: the length of each
    reading (one int, or one per reading as stored), or None to infer it from the spacing."""

    starts: np.ndarray
    kwh: np.ndarray
    interval_seconds: int | np.ndarray | None = None

    def __post_init__(self) -> None:
        starts = np.asarray(self.starts, dtype=np.int64)
        kwh = np.asarray(self.kwh, dtype=np.float64)
        if starts.ndim != 1 or starts.shape != kwh.shape:
            raise BaselineError("invalid_readings", "starts and kwh are two 1-D arrays of the same length.", "readings")
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "kwh", kwh)

    @classmethod
    def from_mapping(
        cls, readings: Mapping[datetime, float | None], *, interval_seconds: int | npt.NDArray[np.int64] | None = None
    ) -> "IntervalReadings":
        """From {aware interval start: kWh} (None: a missing reading)."""
        starts, kwh = [], []
        for start, value in readings.items():
            if not isinstance(start, datetime) or start.utcoffset() is None:
                raise BaselineError("naive_timestamp", f"Reading start {start!r} needs its UTC offset.", "readings")
            starts.append(math.floor(start.timestamp()))
            kwh.append(math.nan if value is None else float(value))
        return cls(np.array(starts, dtype=np.int64), np.array(kwh, dtype=np.float64), interval_seconds)


def interval_seconds_of(readings: IntervalReadings, interval_minutes: int | None) -> int:
    """The readings' interval length: stated per reading, stated as a parameter, or the smallest
    spacing of the starts. Mixed lengths are refused rather than guessed at: different stated
    lengths, or a start off the grid of the others. (Inferred from starts alone, hourly readings
    among 15-minute ones on the same grid look like missing 15-minute readings; the database
    states each reading's length, which catches that.)"""
    stated = readings.interval_seconds
    step = None
    if stated is not None:
        lengths = np.unique(np.asarray(stated, dtype=np.int64))
        if lengths.size > 1:
            raise BaselineError(
                "mixed_intervals",
                "Readings of different lengths "
                f"({', '.join(f'{s // 60} min' for s in lengths)}); a baseline needs one length.",
                "interval_seconds",
            )
        step = int(lengths[0]) if lengths.size else None
    if interval_minutes is not None:
        if step is not None and step != interval_minutes * 60:
            raise BaselineError(
                "mixed_intervals",
                f"interval_minutes is {interval_minutes} but the readings are {step // 60}-minute readings.",
                "interval_minutes",
            )
        step = interval_minutes * 60
    starts = readings.starts
    gaps = np.diff(starts)
    if gaps.size and gaps.min() <= 0:  # not in order (allowed) or a duplicate (refused)
        starts = np.sort(starts)
        gaps = np.diff(starts)
        if gaps.min() == 0:
            raise BaselineError(
                "duplicate_reading", f"Two readings start at {_iso(starts[1:][gaps == 0][0])}.", "readings"
            )
    if step is None:
        if not gaps.size:
            raise BaselineError(
                "unknown_interval",
                "Too few readings to tell their interval length; give interval_minutes.",
                "interval_minutes",
            )
        step = int(gaps.min())
    if step not in STEPS:
        raise BaselineError(
            "unsupported_interval",
            f"Readings are {step / 60:g} minutes apart; baselines use "
            f"{', '.join(str(s // 60) for s in STEPS)}-minute intervals.",
            "interval_minutes",
        )
    if gaps.size:
        off = gaps % step != 0
        if gaps.min() < step or off.any():
            at = starts[1:][(gaps < step) | off][0]
            raise BaselineError(
                "mixed_intervals",
                f"The reading at {_iso(at)} is not on the {step // 60}-minute "
                "grid of the others: readings of mixed lengths?",
                "readings",
            )
    return step


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise BaselineError("unknown_time_zone", f"{name!r} is not an IANA time zone name.", "time_zone") from None


@dataclass(frozen=True, eq=False)
class DayGrid:
    """Every real interval of `days` local days from `first`, and its (day row, wall slot)."""

    zone_name: str
    first: date
    days: int
    step: int
    slots: int  # wall-clock slots in a 24-hour day
    t0: int  # epoch of the first local midnight
    count: int  # real intervals (a 23-hour day has fewer, a 25-hour day more)
    row: np.ndarray
    col: np.ndarray
    pos: np.ndarray  # row * slots + col: the interval's cell in the days x slots matrix
    second_idx: np.ndarray  # intervals that repeat a wall slot (the fall-back hour's second pass)
    first_idx: np.ndarray | None  # the others (None: all of them)
    absent: np.ndarray  # bool per cell: the wall slot does not exist that day (spring forward)
    dates: tuple[date, ...]

    def index(self, epoch: int, what: str) -> int:
        k, off = divmod(epoch - self.t0, self.step)
        if off or not 0 <= k < self.count:
            raise BaselineError(
                "misaligned_time",
                f"{what} {_iso(epoch)} is not on the {self.step // 60}-minute interval grid of the market's local day.",
                what.replace(" ", "_"),
            )
        return int(k)

    def values(self, readings: IntervalReadings) -> np.ndarray:
        """kWh per real interval, NaN where there is no reading; readings outside the grid ignored."""
        k = readings.starts - self.t0
        kwh = readings.kwh
        inside = (k >= 0) & (k < self.count * self.step)
        if not inside.all():
            k, kwh = k[inside], kwh[inside]
        off = k % self.step
        if off.any():
            raise BaselineError(
                "misaligned_time",
                f"The reading at {_iso(self.t0 + k[off != 0][0])} is not on the "
                f"{self.step // 60}-minute grid of the market's local day.",
                "readings",
            )
        v = np.full(self.count, np.nan)
        v[k // self.step] = kwh
        return v

    def matrix(self, v: np.ndarray) -> np.ndarray:
        """The flat days x slots matrix of `values` (NaN: missing or absent)."""
        m = np.full(self.days * self.slots, np.nan)
        if self.first_idx is None:
            m[self.pos] = v
        else:
            m[self.pos[self.first_idx]] = v[self.first_idx]
            cells = self.pos[self.second_idx]
            m[cells] = (m[cells] + v[self.second_idx]) * 0.5
        return m

    def utc(self, k: int) -> datetime:
        return datetime.fromtimestamp(self.t0 + k * self.step, UTC)


def _midnight(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


@lru_cache(maxsize=256)
def day_grid(zone_name: str, first: date, days: int, step: int) -> DayGrid:
    tz = zone(zone_name)
    slots = 86400 // step
    edges = [_midnight(first + timedelta(days=i), tz) for i in range(days + 1)]
    t0 = edges[0]
    rows, cols, second = [], [], []
    for i in range(days):
        start, end = edges[i], edges[i + 1]
        if (start - t0) % step or (end - start) % step:
            raise BaselineError(
                "misaligned_time_zone",
                f"Local days in {zone_name} do not start on the {step // 60}-minute grid.",
                "time_zone",
            )
        n = (end - start) // step
        rows.append(np.full(n, i, dtype=np.int64))
        if n == slots:
            cols.append(np.arange(slots, dtype=np.int64))
            second.append(np.zeros(slots, dtype=bool))
            continue
        # A DST day (rare): wall-clock slot of each real interval, one datetime each.
        day_cols, seen, again = [], set(), []
        for j in range(n):
            local = datetime.fromtimestamp(start + j * step, tz)
            seconds = local.hour * 3600 + local.minute * 60 + local.second
            if seconds % step:
                raise BaselineError(
                    "misaligned_time_zone",
                    f"Local time {local.isoformat()} is not on the {step // 60}-minute grid.",
                    "time_zone",
                )
            slot = seconds // step
            again.append(slot in seen)
            seen.add(slot)
            day_cols.append(slot)
        cols.append(np.array(day_cols, dtype=np.int64))
        second.append(np.array(again, dtype=bool))
    row, col, is_second = np.concatenate(rows), np.concatenate(cols), np.concatenate(second)
    pos = row * slots + col
    absent = np.ones(days * slots, dtype=bool)
    absent[pos] = False
    second_idx = np.flatnonzero(is_second)
    for a in (row, col, pos, absent, second_idx):
        a.flags.writeable = False
    return DayGrid(
        zone_name=zone_name,
        first=first,
        days=days,
        step=step,
        slots=slots,
        t0=t0,
        count=int(row.size),
        row=row,
        col=col,
        pos=pos,
        second_idx=second_idx,
        first_idx=np.flatnonzero(~is_second) if second_idx.size else None,
        absent=absent,
        dates=tuple(first + timedelta(days=i) for i in range(days)),
    )


def wall_clock_span(start: datetime, end: datetime, tz: ZoneInfo) -> timedelta:
    """How long [start, end) is on the local clock: a whole fall-back day is 24 hours (25 real ones)."""
    return end.astimezone(tz).replace(tzinfo=None) - start.astimezone(tz).replace(tzinfo=None)


def event_epochs(event_start: datetime, event_end: datetime, tz: ZoneInfo | None = None) -> tuple[int, int]:
    """The event's [start, end) in epoch seconds. At most 24 hours on the local clock (a whole fall-back day, 25 real
    hours, is one event; without the zone, 24 real hours)."""
    for name, at in (("event_start", event_start), ("event_end", event_end)):
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise BaselineError("naive_timestamp", f"{name} needs its UTC offset (an aware datetime).", name)
    if event_end <= event_start:
        raise BaselineError("invalid_event", "The event must end after it starts.", "event_end")
    span = event_end - event_start if tz is None else max(wall_clock_span(event_start, event_end, tz), timedelta(0))
    if span > timedelta(hours=24) or event_end - event_start > timedelta(hours=25):
        raise BaselineError(
            "invalid_event",
            "An event longer than 24 hours on the local clock is not baselined as one event.",
            "event_end",
        )
    return math.floor(event_start.timestamp()), math.floor(event_end.timestamp())


def local_date(epoch: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(epoch, tz).date()
