from datetime import date

from django.db.models import Q
from django.utils import timezone

from aggregator.models import Program
from enrollment.eligibility import EligibilityFacts
from enrollment.lifecycle import OPEN, State
from enrollment.models import Consent, Device, Enrollment, RetailProgramParticipation


def active_consents(*, customer_id: int, at=None):
    at = at or timezone.now()
    return Consent.objects.filter(customer_id=customer_id, granted_at__lte=at).filter(
        Q(revoked_at__isnull=True) | Q(revoked_at__gt=at)
    )


def active_retail_programs(*, site_id: int, on: date) -> frozenset[str]:
    rows = RetailProgramParticipation.objects.filter(site_id=site_id).filter(
        Q(starts_on__isnull=True) | Q(starts_on__lte=on), Q(ends_on__isnull=True) | Q(ends_on__gte=on)
    )
    return frozenset(rows.values_list("kind", flat=True))


def eligibility_facts(*, device: Device, program: Program, ignore_enrollment_id: int | None = None, at=None) -> EligibilityFacts:
    at = at or timezone.now()
    site = device.site
    consents = list(active_consents(customer_id=site.customer_id, at=at).values_list("kind", "program_id", "terms_version"))
    other = (
        Enrollment.objects.filter(device=device, state__in=[s.value for s in OPEN])
        .exclude(pk=ignore_enrollment_id)
        .select_related("program__market")
        .first()
    )
    return EligibilityFacts(
        program_code=str(program),
        program_open=program.is_open,
        program_market=program.market.code,
        site_market=site.market.code,
        has_meter=bool(site.meter_id),
        required_terms_version=program.terms_version,
        consented_terms_versions=frozenset(
            version for kind, program_id, version in consents
            if kind == Consent.Kind.PROGRAM_TERMS and program_id == program.pk
        ),
        has_data_sharing_consent=any(kind == Consent.Kind.UTILITY_DATA_SHARING for kind, _, _ in consents),
        retail_programs=active_retail_programs(site_id=site.pk, on=at.astimezone(site_tz(site)).date()),
        excluded_retail_programs=frozenset(program.excluded_retail_programs),
        other_open_enrollment=str(other.program) if other else None,
    )


def site_tz(site):
    import zoneinfo

    return zoneinfo.ZoneInfo(site.time_zone)


def overdue_reviews(*, now=None):
    now = now or timezone.now()
    return Enrollment.objects.filter(state=State.UTILITY_REVIEW, review_deadline__lte=now)
