"""OpenAPI descriptions of the platform's authentication schemes and of its error responses (drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class OperatorTokenScheme(OpenApiAuthenticationExtension):
    target_class = "aggregator.core.access.authentication.OperatorTokenAuthentication"
    name = "operatorToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "op_<key id>_<secret>",
            "description": "Operator API token (`manage.py issue_operator_token`); carries the user's roles.",
        }


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "aggregator.core.access.devices.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "dev_<key id>_<secret> or gw_<key id>_<secret>",
            "description": "Device or gateway token issued by an operator; sees only its own devices.",
        }


class MarketTokenScheme(OpenApiAuthenticationExtension):
    target_class = "dispatch.api.inbound.MarketTokenAuthentication"
    name = "marketToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mkt_<key id>_<secret>",
            "description": (
                "Market or utility token (`manage.py issue_market_token`): sends dispatch instructions; a market's "
                "own token also reads its resources' telemetry."
            ),
        }


class UtilityTokenScheme(OpenApiAuthenticationExtension):
    target_class = "dispatch.api.utility.UtilityTokenAuthentication"
    name = "utilityToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "utl_<key id>_<secret>",
            "description": (
                "A distribution utility's token (`manage.py issue_utility_token`): blocks or caps dispatch of its "
                "own customers' devices in an area for a window."
            ),
        }


# Every refusal is the one error body (aggregator.core.api.errors); these are the statuses any operation can
# answer through the shared plumbing (authentication, permissions, validation, lookups, domain rules, outages),
# documented once here rather than on each view. An operation's own description of a status wins.
ERROR_SCHEMA = {
    "type": "object",
    "description": "The API's one error body: what went wrong, by field.",
    "required": ["type", "title", "status", "errors"],
    "properties": {
        "type": {"type": "string", "description": "Machine-readable kind, e.g. validation_error, not_found."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "code", "message"],
                "properties": {
                    "field": {
                        "type": "string",
                        "nullable": True,
                        "description": "The field's path; null: the request.",
                    },
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
ANY_OPERATION = {
    400: "Invalid input (a body field, a query parameter or the body itself), by field.",
    401: "No valid credential.",
    403: "The credential's role or scope does not allow this.",
    404: "No such object, or not one this credential may see.",
    503: "The database or Redis is unavailable; retry after Retry-After seconds.",
}
WRITES = {
    409: "The object's state or what references it does not allow this.",
    422: "The domain refuses the request (e.g. a device not eligible for the program).",
}
WITH_BODY = {
    413: "The request body is larger than the API accepts.",
    415: "Unsupported request content type.",
}
DEVICE_API = {429: "Too many requests for this token; retry after Retry-After seconds."}


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error body, under every status an operation can answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            statuses = dict(ANY_OPERATION)
            if method in ("post", "put", "patch", "delete"):
                statuses |= WRITES
            if "requestBody" in operation:
                statuses |= WITH_BODY
            if any("deviceToken" in requirement for requirement in operation.get("security", [])):
                statuses |= DEVICE_API
            responses = operation.setdefault("responses", {})
            for code, description in sorted(statuses.items()):
                responses.setdefault(str(code), {"description": description, "content": error})
    return result
