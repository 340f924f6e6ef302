"""Serializer fields shared by the APIs, and the one rule for a date and time's UTC offset."""

from datetime import datetime, timedelta

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

# Real offsets run from -12:00 to +14:00; PostgreSQL keeps up to 15:59 and refuses more.
MAX_UTC_OFFSET = timedelta(hours=16)
OFFSET_MESSAGE = "The UTC offset must be within ±15:59 (real ones run from -12:00 to +14:00)."


def possible_offset(value: datetime) -> bool:
    """Whether the value's UTC offset (if any) is one PostgreSQL can store."""
    offset = value.utcoffset()
    return offset is None or abs(offset) < MAX_UTC_OFFSET


class DateTimeField(serializers.DateTimeField):
    """DRF's date and time, refusing (400, invalid_offset) a UTC offset PostgreSQL cannot store rather than
    letting the INSERT fail with a 500. The model serializers' field for every DateTimeField."""

    default_error_messages = {"invalid_offset": OFFSET_MESSAGE}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and not possible_offset(parsed):
                self.fail("invalid_offset")
        return super().to_internal_value(value)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time that must carry its UTC offset.

    DRF would read a naive value in the server's time zone; for grid events and device
    replies that guess is a wrong hour twice a year, so it is refused instead.
    """

    default_error_messages = {
        "naive_timestamp": "Give the UTC offset (e.g. 2026-07-15T14:00:00-04:00 or ...Z).",
        "invalid_offset": OFFSET_MESSAGE,
    }

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None  # the parent names the format problem
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive_timestamp")
            if parsed is not None and not possible_offset(parsed):
                self.fail("invalid_offset")
        return super().to_internal_value(value)
