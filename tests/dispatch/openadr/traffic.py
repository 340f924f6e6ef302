"""The VTN's traffic, recorded as the tests make it and checked against the published OpenAPI definitions.

Every answer under /openadr3/3.0.1/ and /openadr3/3.1.0/ (through the test client and the live
server alike) is validated with openapi-core against the OpenADR Alliance's definition of its
version (dispatch/openadr/definitions/): its status must be one the operation documents and its
body must match that status's schema. Requests are not: the tests send bad ones on purpose, and
the VTN accepts some forms the definitions do not (HTTP verbs for subscription operations).

Where the VTN knowingly goes beyond a definition (README, OpenADR section), the check says so
instead of failing: 401 on 3.0.1 (which documents none; RFC 6750 asks for it), GET auth/server on
3.0.1 (3.1's discovery, offered on both) and the problem-object 404 of a path that names no
operation. Two errata of 3.1.0 are applied: a stray default ("null          -", not an array) of
BlVenRequest.targets, which makes the definition itself invalid, is null; and its server VEN and resource are `allOf` the object
metadata (objectType VEN / RESOURCE) and the business-logic request (objectType BL_VEN_REQUEST /
BL_RESOURCE_REQUEST), which no object can satisfy; the server objects keep objectMetadata's.
"""

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl

import yaml
from django.core.handlers.base import BaseHandler
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

DEFINITIONS = Path(__file__).resolve().parents[3] / "dispatch" / "openadr" / "definitions"
VERSIONS = ("3.0.1", "3.1.0")
HOST = "http://vtn"


@dataclass(frozen=True)
class Exchange:
    version: str
    method: str
    path: str  # relative to the version's base path, as the definition names it
    query: tuple[tuple[str, str], ...]
    status: int
    content_type: str
    body: bytes

    def __str__(self) -> str:
        return f"{self.method} /openadr3/{self.version}{self.path} -> {self.status}"


@cache
def definition(version: str) -> dict:
    spec = yaml.safe_load((DEFINITIONS / f"openadr3-{version}.yaml").read_text())
    spec["servers"] = [{"url": HOST}]
    if version == "3.1.0":
        schemas = spec["components"]["schemas"]
        schemas["BlVenRequest"]["properties"]["targets"]["default"] = None  # a stray "null          -" in 3.1.0
        for server, request in (("ven", "BlVenRequest"), ("resource", "BlResourceRequest")):
            erratum = copy.deepcopy(schemas[request])
            erratum["properties"].pop("objectType")
            erratum["required"] = [r for r in erratum["required"] if r != "objectType"]
            schemas[server]["allOf"] = [{"$ref": "#/components/schemas/objectMetadata"}, erratum]
    return spec


@cache
def openapi(version: str) -> OpenAPI:
    return OpenAPI.from_dict(definition(version))


def _schema_violations(value, schema: dict, version: str) -> list[str]:
    spec = definition(version)
    resolved = {**schema, "components": spec["components"]}
    validator = OAS30Validator(resolved)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]


def problem_violations(body: bytes, version: str) -> list[str]:
    try:
        value = json.loads(body)
    except ValueError:
        return ["not JSON"]
    return _schema_violations(value, {"$ref": "#/components/schemas/problem"}, version)


def notification_violations(notification: dict, version: str) -> list[str]:
    """A webhook notification against the version's notification schema.

    Its `object` is checked against the schema its objectType names: the definitions' discriminator has
    no mapping, and the implicit one names schemas (EVENT, PROGRAM, ...) that do not exist.
    """
    schema = copy.deepcopy(definition(version)["components"]["schemas"]["notification"])
    object_type = str(notification.get("objectType", "")).lower()
    schema["properties"]["object"] = {"$ref": f"#/components/schemas/{object_type}"}
    return _schema_violations(notification, schema, version)


def violations(exchange: Exchange) -> list[str]:
    """What in the answer the definition does not allow (empty: it validates)."""
    request = MockRequest(HOST, exchange.method, exchange.path, args=dict(exchange.query))
    response = MockResponse(exchange.body, status_code=exchange.status, content_type=exchange.content_type)
    try:
        openapi(exchange.version).validate_response(request, response)
    except PathNotFound:
        if exchange.status == 404 or (exchange.version == "3.0.1" and exchange.path == "/auth/server"):
            return problem_violations(exchange.body, exchange.version) if exchange.status == 404 else []
        return [f"{exchange}: no such operation in {exchange.version}"]
    except ResponseNotFound:
        if exchange.version == "3.0.1" and exchange.status == 401:
            return [f"{exchange}: {v}" for v in problem_violations(exchange.body, exchange.version)]
        return [f"{exchange}: status {exchange.status} is not documented"]
    except Exception as invalid:  # openapi-core's validation errors, with the schema errors as their cause
        causes = getattr(invalid, "schema_errors", None) or getattr(invalid.__cause__, "schema_errors", None) or []
        details = "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in causes)
        return [f"{exchange}: {type(invalid).__name__} {invalid} {details}".strip()]
    return []


class Recorder:
    """Records every VTN answer the process gives while installed (monkeypatch.setattr on BaseHandler)."""

    def __init__(self):
        self.exchanges: list[Exchange] = []

    def install(self, monkeypatch) -> "Recorder":
        original = BaseHandler.get_response
        recorder = self

        def get_response(handler, request):
            response = original(handler, request)
            recorder.record(request, response)
            return response

        monkeypatch.setattr(BaseHandler, "get_response", get_response)
        return self

    def record(self, request, response) -> None:
        for version in VERSIONS:
            base = f"/openadr3/{version}"
            if request.path.startswith(f"{base}/"):
                break
        else:
            return
        self.exchanges.append(
            Exchange(
                version=version,
                method=request.method,
                path=request.path[len(base) :],
                query=tuple(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)),
                status=response.status_code,
                content_type=(response.get("Content-Type") or "").split(";")[0],
                body=b"" if getattr(response, "streaming", False) else response.content,
            )
        )

    def violations(self) -> list[str]:
        return [v for exchange in self.exchanges for v in violations(exchange)]
