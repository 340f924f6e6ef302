"""Generated requests over the operator and device APIs, from the schema the application serves.

Every phase schemathesis offers runs for each role: examples, coverage (boundary and invalid
values, unexpected methods) and fuzzing over each operation, then the stateful phase, which
chains operations through the links it infers (an id a create answered, used by a read, an
update, a delete). No answer may be a 5xx, and every answer must be one the schema documents:
its status, its content type, its headers and its body.
"""

import pytest

from tests.hardening.conftest import run_schemathesis, seed_world, served_schema

OPERATOR_API = r"^/api/(v1|inbound/v1)/"
DEVICE_API = r"^/api/device/v1/"
ROLES = {"admin": OPERATOR_API, "analyst": OPERATOR_API, "device": DEVICE_API}
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_operation_answers_as_documented(role, web, tmp_path, record_property):
    world = seed_world(role)
    reader = world if role != "device" else seed_world("analyst")  # a device's token does not open the schema
    run = run_schemathesis(
        served_schema(web.url, reader.token),
        base_url=web.url,
        token=world.token,
        paths=ROLES[role],
        report_dir=tmp_path,
    )
    record_property("requests", run.requests)
    print(f"{role}: {run.requests} requests")
    server_errors = [line for line in web.log().splitlines() if "Traceback" in line or "Error" in line]
    assert run.returncode == 0, f"{run.output}\n\nserver log:\n" + "\n".join(server_errors[-200:])
