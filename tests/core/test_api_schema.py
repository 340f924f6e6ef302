"""The OpenAPI schema documents every status the API answers, each refusal in the one error body."""

import pytest
from jsonschema import Draft202012Validator

EVERY_OPERATION = {"400", "401", "403", "404", "503"}


@pytest.fixture
def schema(api_as):
    response = api_as("analyst").get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", method, operation


def test_every_operation_documents_the_refusals_of_the_shared_plumbing(schema):
    for name, method, operation in operations(schema):
        missing = EVERY_OPERATION - set(operation["responses"])
        if method != "get":
            missing |= {"409", "422"} - set(operation["responses"])
        if "requestBody" in operation:
            missing |= {"413", "415"} - set(operation["responses"])
        assert not missing, f"{name} does not document {sorted(missing)}"


def test_device_api_operations_document_the_rate_limit(schema):
    for name, _, operation in operations(schema):
        if name.split()[1].startswith("/api/device/v1/"):
            assert "429" in operation["responses"], name


def test_a_refusal_is_documented_as_the_error_body(schema, api_as):
    refused = api_as("analyst").post("/api/v1/customers/", {"name": "x"}, format="json")
    assert refused.status_code == 403
    documented = schema["paths"]["/api/v1/customers/"]["post"]["responses"]["403"]
    error = documented["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    Draft202012Validator(schema["components"]["schemas"]["Error"]).validate(refused.json())


def test_a_fleet_import_without_a_file_is_documented_as_the_error_body(schema, api_as):
    refused = api_as("operator").post("/api/v1/fleet-imports/", {}, format="multipart")
    assert refused.status_code == 400
    documented = schema["paths"]["/api/v1/fleet-imports/"]["post"]["responses"]["400"]
    body = {**documented["content"]["application/json"]["schema"], "components": schema["components"]}
    Draft202012Validator(body).validate(refused.json())


def test_a_standing_opt_out_documents_the_201_it_answers(schema, device_client):
    """Found by the hardening suite at its full budget: the opt-out answers 201, the schema said 200."""
    from datetime import UTC, datetime, timedelta

    from tests.factories import DeviceFactory

    client, _ = device_client(device=DeviceFactory())
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    answered = client.post("/api/device/v1/opt-outs", {"until": until}, format="json")
    assert answered.status_code == 201, answered.content
    assert "201" in schema["paths"]["/api/device/v1/opt-outs"]["post"]["responses"]
