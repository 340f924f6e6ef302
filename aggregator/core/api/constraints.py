"""The models' check constraints read as input rules: which field a constraint is about and what it asks.

The API checks input against the same CheckConstraint definitions the database enforces, so that a value
the database would refuse is a 400 naming the field, before anything is written.
"""

import copy
import re
from collections.abc import Mapping

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import router
from django.db.models import CheckConstraint, F, Model, Q, UniqueConstraint
from django.db.models.constants import LOOKUP_SEP
from rest_framework.exceptions import ErrorDetail

_BOUNDS = {"gt": "greater than", "gte": "at least", "lt": "less than", "lte": "at most"}


def fields_of(condition: Q) -> list[str]:
    """The model fields a condition reads, in the order it names them."""
    names: list[str] = []

    def add(name: str) -> None:
        base = name.split(LOOKUP_SEP, 1)[0]
        if base not in names:
            names.append(base)

    def walk(node: Q) -> None:
        for child in node.children:
            if isinstance(child, Q):
                walk(child)
            elif isinstance(child, tuple):
                lookup, value = child
                add(lookup)
                if isinstance(value, F):
                    add(value.name)

    walk(condition)
    return names


def _bounds(condition: Q, field: str) -> list[str] | None:
    """["greater than 0", "at most 24"] when the condition only bounds `field` by constants (or allows it empty)."""
    if condition.negated:
        return None
    children = list(condition.children)
    if condition.connector == Q.OR:
        children = [child for child in children if child != (f"{field}{LOOKUP_SEP}isnull", True)]
        if len(children) != 1:
            return None
        return _bounds(children[0] if isinstance(children[0], Q) else Q(children[0]), field)
    bounds: list[str] = []
    for child in children:
        if isinstance(child, Q):
            inner = _bounds(child, field)
            if inner is None:
                return None
            bounds.extend(inner)
            continue
        if not isinstance(child, tuple):
            return None
        lookup, value = child
        name, _, operator = lookup.partition(LOOKUP_SEP)
        if name != field or operator not in _BOUNDS or hasattr(value, "resolve_expression"):
            return None
        bounds.append(f"{_BOUNDS[operator]} {value}")
    return bounds or None


def problem(constraint: CheckConstraint, field: str) -> ErrorDetail:
    """What a broken constraint says about `field`: its bounds where it has simple ones, else its rule."""
    bounds = _bounds(constraint.condition, field)
    if bounds:
        return ErrorDetail(f"Must be {' and '.join(bounds)}.", "out_of_range")
    if constraint.violation_error_message not in (None, constraint.default_violation_error_message):
        return ErrorDetail(str(constraint.get_violation_error_message()), constraint.violation_error_code or "invalid")
    return ErrorDetail(f"Not allowed together with the other values (rule {constraint.name}).", "invalid")


def check_constraints(model: type[Model]) -> list[CheckConstraint]:
    return [c for c in model._meta.constraints if isinstance(c, CheckConstraint)]


def violations(model: type[Model], instance: Model | None, attrs: Mapping) -> dict[str, list[ErrorDetail]]:
    """{field: [problem]} for each check constraint of `model` that `attrs` (applied to `instance`, or to a
    new row) would break. A new row's fields absent from `attrs` are not judged: they are the view's or
    the model's to fill in, and the database still has the last word on them."""
    concrete = {field.name for field in model._meta.concrete_fields}
    given = {name: value for name, value in attrs.items() if name in concrete}
    if instance is None:
        candidate = model(**given)
        exclude = concrete - set(given)
    else:
        candidate = copy.copy(instance)  # the instance itself changes only when the serializer saves
        for name, value in given.items():
            setattr(candidate, name, value)
        exclude = set()
    using = router.db_for_write(model)
    errors: dict[str, list[ErrorDetail]] = {}
    for constraint in check_constraints(model):
        named = [name for name in fields_of(constraint.condition) if name in given]
        if not named:
            continue  # the request changes nothing this constraint reads
        try:
            constraint.validate(model, candidate, exclude=exclude, using=using)
        except ValidationError:
            errors.setdefault(named[0], []).append(problem(constraint, named[0]))
    return errors


def find(name: str) -> tuple[type[Model], CheckConstraint] | None:
    """The model and check constraint the database knows by `name`."""
    for model in apps.get_models():
        for constraint in check_constraints(model):
            if constraint.name == name:
                return model, constraint
    return None


def _unique_fields(model: type[Model], name: str, detail: str) -> list[str]:
    """The fields of `model`'s unique constraint `name`, or of the unique column(s) PostgreSQL's detail
    ("Key (external_ref)=(C-1) already exists.") names."""
    for constraint in model._meta.constraints:
        if isinstance(constraint, UniqueConstraint) and constraint.name == name:
            if constraint.fields:
                return list(constraint.fields)
            nodes = [node for e in constraint.expressions for node in (e.flatten() if hasattr(e, "flatten") else [e])]
            return [node.name for node in nodes if isinstance(node, F)]
    key = re.match(r"Key \((.*?)\)=\(", detail)
    columns = key.group(1).split(", ") if key else []
    by_column = {field.column: field.name for field in model._meta.concrete_fields}
    return [by_column[column] for column in columns if column in by_column]


def duplicate(*, table: str, name: str, detail: str) -> tuple[str, str] | None:
    """(field, message) for a unique violation of constraint `name` on `table`, the field being the last one
    the constraint lists (the one a person picks: the serial, not the manufacturer), the message Django's."""
    for model in apps.get_models():
        if model._meta.db_table != table:
            continue
        fields = _unique_fields(model, name, detail)
        if not fields:
            return None
        message = model().unique_error_message(model, tuple(fields)).messages[0]
        return fields[-1], message
    return None
