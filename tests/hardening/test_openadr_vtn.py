"""Generated requests over the OpenADR 3 VTN, on both base paths (3.0.1, 3.1), as a business-logic client and as a VEN.

Every phase runs for each: examples, coverage, fuzzing and the stateful phase (a program created,
then read, changed and deleted through the id it answered). No answer may be a 5xx; each must have
a status the description documents, as JSON, a refusal as the specification's problem object.
"""

import pytest
import requests

from dispatch.openadr import auth
from dispatch.openadr.models import Client
from tests.factories import SiteFactory
from tests.hardening.conftest import run_schemathesis
from tests.hardening.openadr_vtn import VERSIONS, base, description

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
ROLES = {"bl": Client.Role.BUSINESS_LOGIC, "ven": Client.Role.VEN}


def access_token(base_url: str, role: str, version: str) -> str:
    site = SiteFactory() if ROLES[role] == Client.Role.VEN else None
    client, secret = auth.issue_client(client_id=f"hardening-{role}", role=ROLES[role], site=site)
    response = requests.post(
        f"{base_url}{base(version)}/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret),
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_vtn_operation_answers_as_documented(role, version, web, tmp_path, record_property):
    token = access_token(web.url, role, version)
    run = run_schemathesis(
        description(version), base_url=web.url, token=token, paths=f"^{base(version)}/", report_dir=tmp_path
    )
    record_property("requests", run.requests)
    print(f"openadr {version} {role}: {run.requests} requests")
    server_errors = [line for line in web.log().splitlines() if "Traceback" in line or "Error" in line]
    assert run.returncode == 0, f"{run.output}\n\nserver log:\n" + "\n".join(server_errors[-200:])
