"""A site's monthly bill and savings on the operator API (the customer portal shows the same)."""

import re
from decimal import Decimal

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.core.errors import Problem
from enrollment.models import Site
from settlement import billing

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def plain(value):
    """JSON-ready: money and quantities as decimal strings, exactly as computed."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class SiteBillView(APIView):
    """The month's bill from the site's interval data, the bills without its equipment, and the savings split."""

    @extend_schema(
        parameters=[
            OpenApiParameter("month", OpenApiTypes.STR, required=True, description="YYYY-MM, in the site's time zone.")
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, pk: int):
        site = get_object_or_404(Site.objects.select_related("market"), pk=pk)
        match = MONTH.match(request.query_params.get("month", ""))
        if match is None:
            raise billing.BillRefused(Problem("invalid", "month is YYYY-MM.", "month"))
        return Response(plain(billing.monthly(site, int(match[1]), int(match[2]))))
