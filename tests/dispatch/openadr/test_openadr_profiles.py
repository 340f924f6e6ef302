"""An operator mapping an OpenADR program may check it against a field profile's published validator."""

import pytest

from dispatch.openadr import profiles
from dispatch.openadr.models import Program
from tests.dispatch.openadr.test_openadr_errors import bl, http  # noqa: F401  (fixtures)

V31 = "/openadr3/3.1.0"
pytestmark = pytest.mark.django_db
GAC_PROGRAM = [
    {"type": "RETAILER_NAME", "values": ["Utility Co"]},
    {"type": "PROGRAM_TYPE", "values": ["DSO_CPO_INTERFACE-2.2.0"]},
    {"type": "BINDING_EVENTS", "values": [True]},
]


def new_program(http, bl, **fields) -> Program:
    answer = http.post(f"{V31}/programs", {"programName": "p", **fields}, content_type="application/json", **bl)
    assert answer.status_code == 201, answer.content
    return Program.objects.get(pk=answer.json()["id"])


def test_a_program_short_of_the_profile_gets_its_findings_by_field(http, bl):
    findings = profiles.check(program=new_program(http, bl), profile="gac-2.2")
    assert {p.field for p in findings} == {"program.attributes"}
    assert any("RETAILER_NAME" in p.message for p in findings)
    assert profiles.check(program=Program.objects.get(), profile="nlflex-1.0")


def test_a_program_with_the_profiles_attributes_complies(http, bl):
    assert profiles.check(program=new_program(http, bl, attributes=GAC_PROGRAM), profile="gac-2.2") == []


def test_mapping_a_program_in_the_admin_reports_its_profile_check(http, bl, browser, program):
    oadr = new_program(http, bl)
    response = browser.post(
        f"/admin/openadr/program/{oadr.pk}/change/",
        {"platform_program": program.pk, "profile": "gac-2.2"},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any("finding(s) for Grid-aware charging (GAC) 2.2" in m and "RETAILER_NAME" in m for m in shown), shown
    oadr.refresh_from_db()
    assert oadr.platform_program_id == program.pk and oadr.profile == "gac-2.2"  # advisory: the mapping is saved
