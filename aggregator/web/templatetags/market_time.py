"""Instants in a market's clock with the zone's abbreviation, right on DST days: Django's `date` filter leaves the
abbreviation out for a wall time that occurs twice (01:00 on the autumn day), where it is the only tell."""

from datetime import datetime, tzinfo

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
