"""The base of the API's model serializers."""

from django.db.models import Model
from rest_framework import serializers
from rest_framework.fields import empty

from aggregator.core.api import constraints


class ModelSerializer(serializers.ModelSerializer):
    """A model serializer that also refuses, naming the field, what the model's check constraints would:
    the rules stay in the model's Meta.constraints and the database, and break no request with a 500."""

    def run_validation(self, data=empty):
        attrs = super().run_validation(data)
        instance = self.instance if isinstance(self.instance, Model) else None
        problems = constraints.violations(self.Meta.model, instance, attrs)
        if problems:
            raise serializers.ValidationError(problems)
        return attrs
