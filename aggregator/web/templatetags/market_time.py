"""Instants in a market's clock with the zone's abbreviation, right on DST days: Django's `date` filter leaves the
abbreviation out for a wall time that occurs twice (01:00 on the autumn day), where it is the only tell."""

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from django import template

register = template.Library()


@register.filter
def clock(at: datetime | None, zone: tzinfo) -> str:
    """ "01:00 EST"."""
    return "" if at is None else at.astimezone(zone).strftime("%H:%M %Z")


@register.filter
def day_clock(at: datetime | None, zone: tzinfo) -> str:
    """ "2026-11-01 01:00 EST"."""
    return "" if at is None else at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


@register.filter
def day_clock_bare(at: datetime | None, zone: tzinfo) -> str:
    """ "2026-11-01 01:00" (a range's start, whose end carries the zone)."""
    return "" if at is None else at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def human_time(at: datetime | None, zone: tzinfo | str | None) -> str:
    """The console's and portal's one format for an instant: in the market's clock, with the zone's abbreviation
    ("Thu 3 Dec 2026, 14:05 PST"); an empty string for no instant. Without a zone it is shown in UTC."""
    if at is None:
        return ""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    return at.astimezone(zone or UTC).strftime("%a %-d %b %Y, %H:%M %Z")


@register.filter
def local_time(at: datetime | None, zone: tzinfo | str | None = None) -> str:
    """ "Thu 3 Dec 2026, 14:05 PST": see human_time."""
    return human_time(at, zone)


@register.filter
def with_unit(value, unit: str) -> str:
    """A figure with its unit and thousands separators ("1,234.5 kW"); a dash for no figure."""
    if value is None or value == "":
        return "–"
    number = float(value)
    places = 0 if unit in ("devices", "sites", "rows") or (number == int(number) and abs(number) >= 1000) else 1
    return f"{number:,.{places}f} {unit}"
