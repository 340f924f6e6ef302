from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from aggregator.reference.models import Program, Utility
from enrollment.eligibility import EligibilityFacts
from enrollment.lifecycle import OPEN, State
from enrollment.models import Consent, Device, Enrollment, FleetCount, RetailProgramParticipation, Site


def eligibility_facts(
    *, device: Device, program: Program, ignore_enrollment_id: int | None = None, at: datetime | None = None
) -> EligibilityFacts:
    ignore = [ignore_enrollment_id] if ignore_enrollment_id is not None else []
    return eligibility_facts_many(device_ids=[device.pk], program=program, ignore_enrollment_ids=ignore, at=at)[
        device.pk
    ]


def eligibility_facts_many(
    *,
    device_ids: Iterable[int],
    program: Program,
    ignore_enrollment_ids: Iterable[int] = (),
    at: datetime | None = None,
) -> dict[int, EligibilityFacts]:
    """Eligibility facts for many devices in one program, in four queries whatever the count."""
    at = at or timezone.now()
    devices = list(
        Device.objects.filter(pk__in=list(device_ids))
        .select_related("site__market")
        .only("pk", "site__customer_id", "site__meter_id", "site__time_zone", "site__utility", "site__market__code")
    )
    customer_ids = {d.site.customer_id for d in devices}
    consents: dict[int, list[tuple[str, int | None, str]]] = {}
    for customer_id, kind, program_id, version in (
        Consent.objects.filter(customer_id__in=customer_ids, granted_at__lte=at)
        .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=at))
        .values_list("customer_id", "kind", "program_id", "terms_version")
    ):
        consents.setdefault(customer_id, []).append((kind, program_id, version))
    retail: dict[int, list[tuple[str, date | None, date | None]]] = {}
    for site_id, kind, starts, ends in RetailProgramParticipation.objects.filter(
        site_id__in={d.site_id for d in devices}
    ).values_list("site_id", "kind", "starts_on", "ends_on"):
        retail.setdefault(site_id, []).append((kind, starts, ends))
    other = {
        device_id: f"{market}/{code}"
        for device_id, market, code in Enrollment.objects.filter(
            device_id__in=[d.pk for d in devices], state__in=[s.value for s in OPEN]
        )
        .exclude(pk__in=list(ignore_enrollment_ids))
        .values_list("device_id", "program__market__code", "program__code")
    }
    site_ids = {d.site_id for d in devices}
    der_kw = {
        site_id: float(total or 0)
        for site_id, total in Device.objects.filter(site_id__in=site_ids)
        .values("site_id")
        .annotate(total=Sum("rated_kw"))
        .values_list("site_id", "total")
    }
    utilities = {u.name: u for u in Utility.objects.filter(name__in={d.site.utility for d in devices})}
    is_dr = program.service == Program.Service.DEMAND_RESPONSE
    facts = {}
    for device in devices:
        site = device.site
        held = consents.get(site.customer_id, [])
        today = at.astimezone(site_tz(site)).date()
        utility = utilities.get(site.utility)
        facts[device.pk] = EligibilityFacts(
            program_code=str(program),
            program_open=program.is_open,
            program_market=program.market.code,
            site_market=site.market.code,
            has_meter=bool(site.meter_id),
            required_terms_version=program.terms_version,
            consented_terms_versions=frozenset(
                version
                for kind, program_id, version in held
                if kind == Consent.Kind.PROGRAM_TERMS and program_id == program.pk
            ),
            has_data_sharing_consent=any(kind == Consent.Kind.UTILITY_DATA_SHARING for kind, _, _ in held),
            retail_programs=frozenset(
                kind
                for kind, starts, ends in retail.get(site.pk, [])
                if (starts is None or starts <= today) and (ends is None or ends >= today)
            ),
            excluded_retail_programs=frozenset(program.excluded_retail_programs),
            other_open_enrollment=other.get(device.pk),
            site_der_kw=der_kw.get(site.pk, 0.0),
            min_der_kw=float(program.market.min_der_kw),
            utility=site.utility,
            small_utility_without_opt_in=utility is not None and utility.is_small and not utility.small_utility_opt_in,
            retail_dr_opted_out=utility is not None and utility.retail_dr_opt_out,
            program_is_demand_response=is_dr,
        )
    return facts


def site_tz(site: Site) -> ZoneInfo:
    import zoneinfo

    return zoneinfo.ZoneInfo(site.time_zone)


def overdue_reviews(*, now: datetime | None = None) -> QuerySet[Enrollment]:
    now = now or timezone.now()
    return Enrollment.objects.filter(state=State.UTILITY_REVIEW, review_deadline__lte=now)


def latest_fleet_count() -> FleetCount | None:
    """The fleet's latest count (enrollment.services.count_fleet), or none before the first."""
    return FleetCount.objects.order_by("-counted_at").first()
