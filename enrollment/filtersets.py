"""The list filters of customers, sites, devices and enrollments, shared by the operator API and the console."""

import django_filters
from django.utils import timezone

from aggregator.core.api.filters import FilterSet
from enrollment.lifecycle import State
from enrollment.models import Customer, Device, Enrollment, Site


class CustomerFilter(FilterSet):
    class Meta:
        model = Customer
        fields = {"kind": ["exact"], "external_ref": ["exact"], "created_at": ["gte", "lt"]}


class SiteFilter(FilterSet):
    market = django_filters.CharFilter(field_name="market__code", lookup_expr="iexact")

    class Meta:
        model = Site
        fields = ["customer", "utility", "meter_id", "pricing_node", "zone", "market"]


class DeviceFilter(FilterSet):
    market = django_filters.CharFilter(field_name="site__market__code", lookup_expr="iexact")
    pricing_node = django_filters.CharFilter(field_name="site__pricing_node")
    customer = django_filters.NumberFilter(field_name="site__customer")
    rated_kw_min = django_filters.NumberFilter(field_name="rated_kw", lookup_expr="gte")
    rated_kw_max = django_filters.NumberFilter(field_name="rated_kw", lookup_expr="lte")
    enrollment_state = django_filters.ChoiceFilter(
        field_name="enrollments__state", choices=State.choices, distinct=True
    )
    # Offline includes never seen: a device without a status row has not reported.
    online = django_filters.BooleanFilter(method="filter_online")

    class Meta:
        model = Device
        fields = ["site", "gateway", "device_type", "manufacturer", "communication_path"]

    def filter_online(self, queryset, name, value):
        return queryset.filter(status__online=True) if value else queryset.exclude(status__online=True)


class EnrollmentFilter(FilterSet):
    review_overdue = django_filters.BooleanFilter(method="filter_overdue")
    market = django_filters.CharFilter(field_name="program__market__code", lookup_expr="iexact")

    class Meta:
        model = Enrollment
        fields = {"device": ["exact"], "program": ["exact"], "state": ["exact", "in"], "review_deadline": ["lt", "gte"]}

    def filter_overdue(self, queryset, name, value):
        overdue = {"state": State.UTILITY_REVIEW, "review_deadline__lte": timezone.now()}
        return queryset.filter(**overdue) if value else queryset.exclude(**overdue)
