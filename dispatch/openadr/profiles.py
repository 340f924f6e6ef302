"""Field profiles of OpenADR 3.1 that an operator may check a program against, when mapping it.

A profile (the Dutch grid-aware charging profile, GAC 2.2; the Dutch flexibility DER profile,
NL flex 1.0) narrows what a program and its events must carry. Their published validator
packages (openadr3-client-gac-compliance, openadr3-client-nlflex-compliance; the `profiles`
extra) are run over the program and its live events as the VTN serves them in 3.1. The check
is advisory: it reports, it writes nothing and refuses nothing. Without the packages installed
it says so instead.
"""

import importlib
from dataclasses import dataclass

from aggregator.core.errors import Problem
from dispatch.openadr import representation as rep
from dispatch.openadr.models import V310, Event, Program


@dataclass(frozen=True)
class Profile:
    label: str
    program: str  # "module:function" of the package's validator of a program, and of an event
    event: str


PROFILES = {
    "gac-2.2": Profile(
        "Grid-aware charging (GAC) 2.2",
        "openadr3_client_gac_compliance.gac22.program_gac_compliant:validate_program_gac_compliant",
        "openadr3_client_gac_compliance.gac22.event_gac_compliant:validate_event_gac_compliant",
    ),
    "nlflex-1.0": Profile(
        "NL flex DER profile 1.0",
        "openadr3_client_nlflex_compliance.nlflex10.program_nlflex_compliant:validate_program_nlflex_compliant",
        "openadr3_client_nlflex_compliance.nlflex10.event_nlflex_compliant:validate_event_nlflex_compliant",
    ),
}
CHOICES = [(key, profile.label) for key, profile in PROFILES.items()]


def _function(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _problems(errors, where: str) -> list[Problem]:
    out = []
    for error in errors or []:
        kind = error["type"]
        message = kind.message() if hasattr(kind, "message") else str(kind)
        loc = ".".join(str(part) for part in error.get("loc") or ())
        out.append(Problem("profile", message, f"{where}.{loc}" if loc else where))
    return out


def check(*, program: Program, profile: str) -> list[Problem]:
    """What the program and its live events lack for the profile (empty: they comply)."""
    chosen = PROFILES[profile]
    try:
        from openadr3_client.oadr310.models.event.event import ExistingEvent
        from openadr3_client.oadr310.models.program.program import ExistingProgram

        validate_program, validate_event = _function(chosen.program), _function(chosen.event)
    except ImportError:
        return [Problem("profile_unavailable", f"Install the `profiles` extra to check {chosen.label}.", None)]
    problems = _problems(
        validate_program(ExistingProgram.model_validate(rep.program(program, version=V310))), "program"
    )
    for event in Event.live.filter(program=program).order_by("pk"):
        problems += _problems(
            validate_event(ExistingEvent.model_validate(rep.event(event, version=V310))), f"events[{event.pk}]"
        )
    return problems
