"""An OpenAPI description of the OpenADR 3.0.1 and 3.1 VTN's paths, for generated requests against them.

The VTN is described by the OpenADR Alliance's own definition, not by our schema (its views are
excluded from /api/schema/). Its request bodies here are the JSON schemas of an independent
implementation of that definition, openadr3-client's models (a pinned dev dependency), so the
generated objects are the ones a real client would send, and their mutations the ones it would not.
Answers: an object or a list on success, the specification's problem object on refusal.
"""

from openadr3_client.oadr301.models.event.event import NewEvent
from openadr3_client.oadr301.models.program.program import NewProgram
from openadr3_client.oadr301.models.report.report import NewReport
from openadr3_client.oadr301.models.subscriptions.subscription import NewSubscription
from openadr3_client.oadr301.models.ven.resource import NewResource
from openadr3_client.oadr301.models.ven.ven import NewVen
from openadr3_client.oadr310.models.event.event import NewEvent as NewEvent310
from openadr3_client.oadr310.models.program.program import NewProgram as NewProgram310
from openadr3_client.oadr310.models.report.report import NewReport as NewReport310
from openadr3_client.oadr310.models.resource.resource import NewResourceVenRequest
from openadr3_client.oadr310.models.subscriptions.subscription import NewSubscription as NewSubscription310
from openadr3_client.oadr310.models.ven.ven import NewVenVenRequest
from pydantic.json_schema import models_json_schema

VERSIONS = ("3.0.1", "3.1.0")
BASE = "/openadr3/3.0.1"
OBJECTS = {
    "3.0.1": {
        "programs": ("programID", NewProgram, ("targetType", "targetValues")),
        "events": ("eventID", NewEvent, ("programID", "targetType", "targetValues")),
        "reports": ("reportID", NewReport, ("programID", "eventID", "clientName")),
        "subscriptions": ("subscriptionID", NewSubscription, ("programID", "clientName", "objects")),
        "vens": ("venID", NewVen, ("venName", "targetType", "targetValues")),
        "vens/{venID}/resources": ("resourceID", NewResource, ("resourceName", "targetType", "targetValues")),
    },
    "3.1.0": {
        "programs": ("programID", NewProgram310, ("targets",)),
        "events": ("eventID", NewEvent310, ("programID", "targets")),
        "reports": ("reportID", NewReport310, ("programID", "eventID", "clientName")),
        "subscriptions": ("subscriptionID", NewSubscription310, ("programID", "clientName", "objects")),
        "vens": ("venID", NewVenVenRequest, ("venName", "targets")),
        "resources": ("resourceID", NewResourceVenRequest, ("resourceName", "venID", "targets")),
    },
}


def base(version: str) -> str:
    return f"/openadr3/{version}"


PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
REFUSALS = (400, 401, 403, 404, 409, 429, 503)


def _parameter(name: str, where: str = "query") -> dict:
    schema: dict = {"type": "string"}
    if name in ("skip", "limit"):
        schema = {"type": "integer", "minimum": 0}
    elif name in ("targetValues", "objects", "targets"):
        schema = {"type": "array", "items": {"type": "string"}}
    return {"name": name, "in": where, "required": where == "path", "schema": schema, "explode": True}


def _responses(success: int, body: dict) -> dict:
    responses = {str(success): {"description": "OK", "content": {"application/json": {"schema": body}}}}
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status in REFUSALS:
        responses[str(status)] = {"description": "Refused", "content": problem}
    return responses


def _ids(path: str) -> list[dict]:
    return [_parameter("venID", "path")] if "{venID}" in path else []


def description(version: str = "3.0.1") -> dict:
    objects = OBJECTS[version]
    models = [(model, "validation") for _, model, _ in objects.values()]
    refs, definitions = models_json_schema(models, by_alias=True, ref_template="#/components/schemas/{model}")
    schemas = {**definitions["$defs"], "Problem": PROBLEM}
    anything = {"type": "object"}
    paths: dict = {}
    for collection, (id_name, model, filters) in objects.items():
        body = {"required": True, "content": {"application/json": {"schema": refs[(model, "validation")]}}}
        collection_path = f"{base(version)}/{collection}"
        paths[collection_path] = {
            "parameters": _ids(collection_path),
            "get": {
                "parameters": [_parameter(name) for name in ("skip", "limit", *filters)],
                "responses": _responses(200, {"type": "array", "items": anything}),
            },
            "post": {"requestBody": body, "responses": _responses(201, anything)},
        }
        object_path = f"{collection_path}/{{{id_name}}}"
        paths[object_path] = {
            "parameters": [*_ids(object_path), _parameter(id_name, "path")],
            "get": {"responses": _responses(200, anything)},
            "put": {"requestBody": body, "responses": _responses(200, anything)},
            "delete": {"responses": _responses(200, anything)},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"OpenADR {version} VTN", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
