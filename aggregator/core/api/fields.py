"""Serializer fields shared by the APIs."""

from django.utils.dateparse import parse_datetime
from rest_framework import serializers


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time that must carry its UTC offset.

    DRF would read a naive value in the server's time zone; for grid events and device
    replies that guess is a wrong hour twice a year, so it is refused instead.
    """

    default_error_messages = {"naive_timestamp": "Give the UTC offset (e.g. 2026-07-15T14:00:00-04:00 or ...Z)."}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None  # the parent names the format problem
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive_timestamp")
        return super().to_internal_value(value)
