"""The API's list filters (django-filter): date and time filters refuse offsets PostgreSQL cannot store.

Every list endpoint filters through FilterBackend (settings.REST_FRAMEWORK); a declared
filter set subclasses FilterSet here, so that its model's date and time fields get the
same filter as those named in `filterset_fields`.
"""

from django import forms
from django.db import models
from django_filters import filters
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.rest_framework import FilterSet as RestFrameworkFilterSet
from django_filters.rest_framework.filterset import FILTER_FOR_DBFIELD_DEFAULTS

from aggregator.core.api.fields import OFFSET_MESSAGE, possible_offset


class AwareIsoDateTimeField(IsoDateTimeField):
    default_error_messages = {"invalid_offset": OFFSET_MESSAGE}

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and not possible_offset(value):
            raise forms.ValidationError(self.error_messages["invalid_offset"], code="invalid_offset")
        return value


class IsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = AwareIsoDateTimeField


class FilterSet(RestFrameworkFilterSet):
    FILTER_DEFAULTS = {**FILTER_FOR_DBFIELD_DEFAULTS, models.DateTimeField: {"filter_class": IsoDateTimeFilter}}


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet
