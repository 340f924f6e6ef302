"""Whether a device may enroll in a program: a pure rule over plain facts.

The selector `enrollment.selectors.eligibility_facts` gathers the facts from the
database; this module only decides, so the same rule serves the API, the admin,
the lifecycle services and bulk jobs.
"""

from dataclasses import dataclass

from aggregator.core.errors import Problem


@dataclass(frozen=True)
class EligibilityFacts:
    program_code: str
    program_open: bool
    program_market: str
    site_market: str
    has_meter: bool
    required_terms_version: str
    consented_terms_versions: frozenset[str]
    has_data_sharing_consent: bool
    retail_programs: frozenset[str]
    excluded_retail_programs: frozenset[str]
    other_open_enrollment: str | None  # the program code of another open enrollment
    site_der_kw: float = 0.0  # the site's devices' rated kW together (its DER facility)
    min_der_kw: float = 0.0  # the market's smallest facility
    utility: str = ""
    small_utility_without_opt_in: bool = False
    retail_dr_opted_out: bool = False
    program_is_demand_response: bool = False


def problems(facts: EligibilityFacts) -> list[Problem]:
    out = []
    if not facts.program_open:
        out.append(Problem("program_closed", f"Program {facts.program_code} does not accept enrollments.", "program"))
    if facts.site_market != facts.program_market:
        out.append(
            Problem(
                "wrong_market",
                f"The site is in {facts.site_market}; program {facts.program_code} is in {facts.program_market}.",
                "program",
            )
        )
    if not facts.has_meter:
        out.append(Problem("missing_meter", "The site has no revenue meter id; settlement needs one.", "site.meter_id"))
    if facts.required_terms_version not in facts.consented_terms_versions:
        held = ", ".join(sorted(facts.consented_terms_versions)) or "none"
        out.append(
            Problem(
                "missing_consent",
                f"The customer has not consented to the program terms version {facts.required_terms_version} "
                f"(consents held: {held}).",
                "customer.consents",
            )
        )
    if not facts.has_data_sharing_consent:
        out.append(
            Problem(
                "missing_consent",
                "The customer has not consented to sharing data with the utility and the ISO.",
                "customer.consents",
            )
        )
    double = sorted(facts.retail_programs & facts.excluded_retail_programs)
    if double:
        out.append(
            Problem(
                "double_counting",
                f"The site takes part in retail program(s) {', '.join(double)} that program "
                f"{facts.program_code} may not count again.",
                "site.retail_programs",
            )
        )
    if facts.other_open_enrollment is not None:
        out.append(
            Problem(
                "already_enrolled",
                f"The device is already enrolled in program {facts.other_open_enrollment}.",
                "device",
            )
        )
    if facts.min_der_kw > 0 and facts.site_der_kw < facts.min_der_kw:
        out.append(
            Problem(
                "below_minimum_der_size",
                f"The site's DER facility is {facts.site_der_kw:g} kW; {facts.program_market} takes facilities of "
                f"at least {facts.min_der_kw:g} kW in an aggregation.",
                "device.rated_kw",
            )
        )
    if facts.small_utility_without_opt_in:
        out.append(
            Problem(
                "small_utility_not_opted_in",
                f"{facts.utility} is a small utility (4 million MWh a year or less) whose regulator has not permitted "
                "its customers' resources in wholesale aggregations (FERC Order 2222).",
                "site.utility",
            )
        )
    if facts.retail_dr_opted_out and facts.program_is_demand_response:
        out.append(
            Problem(
                "retail_dr_opted_out",
                f"{facts.utility}'s regulator bars its retail customers' demand response from the wholesale markets "
                f"(FERC Order 719 opt-out); program {facts.program_code} is demand response.",
                "site.utility",
            )
        )
    return out
