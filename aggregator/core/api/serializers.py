"""The base of the API's model serializers."""

from django.db import IntegrityError, models, router, transaction
from django.db.models import Model
from rest_framework import serializers
from rest_framework.fields import empty

from aggregator.core.api import constraints
from aggregator.core.api.fields import DateTimeField

UNIQUE_VIOLATION = "23505"


class ModelSerializer(serializers.ModelSerializer):
    """A model serializer that also refuses, naming the field, what the model's check constraints would:
    the rules stay in the model's Meta.constraints and the database, and break no request with a 500.

    Its save answers a unique violation as validation would: when an identical request won the race
    between this one's validation and its INSERT, validating again sees the winner's row and refuses with
    the serializer's own 400, the one a lone duplicate gets."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: DateTimeField,
    }

    def run_validation(self, data=empty):
        attrs = super().run_validation(data)
        instance = self.instance if isinstance(self.instance, Model) else None
        problems = constraints.violations(self.Meta.model, instance, attrs)
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    def save(self, **kwargs):
        try:
            with transaction.atomic(using=router.db_for_write(self.Meta.model)):
                return super().save(**kwargs)
        except IntegrityError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            self.run_validation(self.initial_data)  # raises the duplicate's ValidationError
            raise
