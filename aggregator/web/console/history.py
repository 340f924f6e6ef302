"""An object's change history (django-simple-history): who changed it, when (in its market's time) and what.

Consents and enrollments first, since regulators ask for them; then sites, devices, programs and virtual resources.
"""

from django.http import Http404
from django.shortcuts import render
from django.utils.text import capfirst

from aggregator.aggregation.models import VirtualResource
from aggregator.reference.models import Program
from aggregator.web.console.access import operator_page
from enrollment.models import Consent, Device, Enrollment, Site

LIMIT = 200

# The model by its label, with the way to its market's time zone (none: UTC).
TRACKED = {
    "enrollment.consent": (Consent, lambda o: o.program.market.time_zone if o.program_id else None),
    "enrollment.enrollment": (Enrollment, lambda o: o.program.market.time_zone),
    "enrollment.site": (Site, lambda o: o.market.time_zone),
    "enrollment.device": (Device, lambda o: o.site.market.time_zone),
    "aggregator.program": (Program, lambda o: o.market.time_zone),
    "aggregator.virtualresource": (VirtualResource, lambda o: o.market.time_zone),
}


def changes(model, pk: int) -> list[dict]:
    """Newest first: each version's time, who, the kind of change (created, changed, deleted), its reason and the
    fields it changed with their old and new values."""
    records = list(
        model.history.filter(id=pk).select_related("history_user").order_by("-history_date", "-history_id")[:LIMIT]
    )
    labels = {f.name: capfirst(f.verbose_name) for f in model._meta.fields}
    entries = []
    for newer, older in zip(records, [*records[1:], None]):
        fields = []
        if older is not None and newer.history_type == "~":
            # Not diff_against: it leaves out fields that forms cannot edit, and a state is one of those.
            fields = [
                (labels.get(f.name, f.name), getattr(older, f.attname), getattr(newer, f.attname))
                for f in newer.tracked_fields
                if getattr(older, f.attname) != getattr(newer, f.attname)
            ]
        entries.append(
            {
                "at": newer.history_date,
                "who": newer.history_user.get_username() if newer.history_user else "system (no logged-in user)",
                "kind": {"+": "created", "~": "changed", "-": "deleted"}[newer.history_type],
                "reason": newer.history_change_reason or "",
                "fields": fields,
            }
        )
    return entries


@operator_page()
def object_history(request, model: str, pk: int):
    tracked = TRACKED.get(model)
    if tracked is None:
        raise Http404
    cls, zone_of = tracked
    entries = changes(cls, pk)
    item = cls.objects.filter(pk=pk).first()
    if item is None and not entries:
        raise Http404
    return render(
        request,
        "console/history.html",
        {
            "item": item,
            "kind": cls._meta.verbose_name,
            "pk": pk,
            "entries": entries,
            "zone": zone_of(item) if item is not None else None,
            "limit": LIMIT,
            "section": "lists",
        },
    )
