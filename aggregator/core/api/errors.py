"""One error body for every API: machine-readable, naming the field.

{"type": "validation_error", "title": "Invalid input.", "status": 400,
 "errors": [{"field": "serial", "code": "unique", "message": "..."}]}
"""

import logging

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousMultipartForm,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Model, ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from aggregator.core.api import constraints, outages
from aggregator.core.errors import DomainError

logger = logging.getLogger(__name__)

# PostgreSQL, Redis or the broker out of reach (down, restarting, refusing connections, timing out): the request
# may succeed if sent again, so it is a 503 with Retry-After, not a 500 (one list: aggregator.core.api.outages).
OUTAGES = outages.OUTAGES
RETRY_AFTER_SECONDS = outages.RETRY_AFTER_SECONDS

CHECK_VIOLATION = "23514"
UNIQUE_VIOLATION = "23505"


def flatten(detail, path: str | None = None) -> list[dict]:
    """DRF's nested error detail as a flat list of {field, code, message}."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                out.extend(flatten(value, path))
            else:
                out.extend(flatten(value, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, (str, exceptions.ErrorDetail)) for item in detail):
            return [e for item in detail for e in flatten(item, path)]
        out = []
        for index, item in enumerate(detail):
            if item:
                out.extend(flatten(item, f"{path}[{index}]" if path else f"[{index}]"))
        return out
    return [{"field": path, "code": getattr(detail, "code", "invalid"), "message": str(detail)}]


def body(kind: str, title: str, http_status: int, errors: list[dict]) -> dict:
    return {"type": kind, "title": title, "status": http_status, "errors": errors}


def still_referenced(exc: ProtectedError | RestrictedError, target: type[Model] | None) -> list[dict]:
    """One problem per kind of object that still refers to what a DELETE asked to remove, with its count."""
    referencing = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
    counts: dict[type[Model], int] = {}
    for obj in referencing:
        counts[type(obj)] = counts.get(type(obj), 0) + 1
    what = f"this {target._meta.verbose_name}" if target is not None else "it"
    problems = []
    for model, count in sorted(counts.items(), key=lambda item: item[0]._meta.label):
        name = model._meta.verbose_name if count == 1 else model._meta.verbose_name_plural
        verb = "refers" if count == 1 else "refer"
        problems.append({"field": None, "code": "protected", "message": f"{count} {name} {verb} to {what}."})
    return problems


def exception_handler(exc, context):
    if isinstance(exc, OUTAGES):
        logger.warning("Answered 503: %s: %s", type(exc).__name__, exc)
        set_rollback()
        title = "A service the platform depends on is unavailable; try again shortly."
        return Response(
            body("service_unavailable", title, 503, []), status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    if isinstance(exc, (ProtectedError, RestrictedError)):
        set_rollback()
        errors = still_referenced(exc, _model_of(context.get("view")))
        title = "Still referenced; nothing was deleted."
        return Response(body("protected", title, 409, errors), status=409)
    if isinstance(exc, DomainError):
        set_rollback()
        errors = [p.as_dict() for p in exc.problems]
        return Response(body(exc.code, str(exc.problems[0].message), exc.status, errors), status=exc.status)
    if isinstance(exc, IntegrityError):
        refused = refused_by_database(exc)
        if refused is None:
            return None
        exc = refused
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent, SuspiciousMultipartForm)):
        exc = refused_body(exc)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        kind, title = "validation_error", "Invalid input."
        errors = flatten(exc.detail)
    else:
        codes = exc.get_codes()
        kind = codes if isinstance(codes, str) else exc.default_code
        title = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else str(exc.default_detail)
        errors = [] if not isinstance(exc.detail, (dict, list)) else flatten(exc.detail)
    http_status = exc.status_code or status.HTTP_400_BAD_REQUEST
    return Response(body(kind, title, http_status, errors), status=http_status, headers=headers)


def refused_body(exc: Exception) -> exceptions.APIException:
    """Django's refusal of a request body it would not parse (its limits are settings; the API names them)."""
    if isinstance(exc, RequestDataTooBig):
        refusal = exceptions.APIException(
            f"The request body is larger than the API accepts ({settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes).",
            "too_large",
        )
        refusal.status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        return refusal
    if isinstance(exc, TooManyFieldsSent):
        message = f"The request has more fields than the API accepts ({settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})."
    elif isinstance(exc, TooManyFilesSent):
        message = f"The request has more files than the API accepts ({settings.DATA_UPLOAD_MAX_NUMBER_FILES})."
    else:
        message = "The multipart body is malformed."
    return exceptions.ParseError(message, "malformed_request")


def refused_by_database(exc: IntegrityError) -> exceptions.APIException | None:
    """The 4xx a constraint violation that got past validation stands for (input checks run first; the
    database still decides, e.g. for a value a view or service computed)."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if getattr(cause, "sqlstate", None) == CHECK_VIOLATION and diag is not None:
        found = constraints.find(diag.constraint_name or "")
        if found is not None:
            _, constraint = found
            field = constraints.fields_of(constraint.condition)[0]
            return exceptions.ValidationError({field: [constraints.problem(constraint, field)]})
        return exceptions.ValidationError(
            exceptions.ErrorDetail(f"Not allowed by the rule {diag.constraint_name}.", "invalid")
        )
    if getattr(cause, "sqlstate", None) == UNIQUE_VIOLATION and diag is not None:
        duplicate = constraints.duplicate(
            table=diag.table_name or "", name=diag.constraint_name or "", detail=diag.message_detail or ""
        )
        if duplicate is not None:
            field, message = duplicate
            return exceptions.ValidationError({field: [exceptions.ErrorDetail(message, "unique")]})
        return exceptions.ValidationError(exceptions.ErrorDetail("This already exists.", "unique"))
    return None


def _model_of(view) -> type[Model] | None:
    return getattr(getattr(view, "queryset", None), "model", None)
