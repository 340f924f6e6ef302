"""Validation of the OpenADR 3.0.1 and 3.1 objects a client writes, by the specification's schemas.

Each `clean_*` takes the decoded JSON body and returns the object's writable fields (the
VTN-provisioned ones, `id`, `createdDateTime`, `modificationDateTime` and `objectType`,
are ignored as the specification says) or raises Invalid with a Problem per bad field,
named by its path in the body (`intervals[0].payloads[0].values`).

Objects are stored in 3.0.1's form whichever version wrote them. 3.1's targets are plain
strings where 3.0.1's are value maps: a 3.1 target "TYPE:value" is the 3.0.1 target of that
type and value, any other string s the target {"type": "TARGET", "values": [s]}, and back (so
a 3.0.1 event for VEN_NAME ven-1 reads as "VEN_NAME:ven-1" in 3.1, and the other way round).
"""

import json
import re
from datetime import datetime, timedelta

from django.utils.dateparse import parse_datetime

from aggregator.core.errors import DomainError, Problem
from dispatch.openadr.models import V301, V310

OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# The specification's duration pattern (ISO 8601), read into its parts.
DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
OBJECT_TYPES = ("PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE")
# A subscription's operations in the definitions' words (3.0.1 and 3.1), and the HTTP verbs that 3.0.0 and
# widely used client libraries still send for them: both are accepted, the definitions' words are stored.
OPERATIONS = ("READ", "CREATE", "UPDATE", "DELETE")
VERB_OPERATIONS = {"GET": "READ", "POST": "CREATE", "PUT": "UPDATE", "DELETE": "DELETE"}
INT32 = 2**31 - 1
# The longest duration the VTN takes (a century): longer ones would overflow the date arithmetic of intervals.
MAX_DURATION = timedelta(days=36525)


class Invalid(DomainError):
    status = 400


PLAIN_TARGET = "TARGET"


def targets_from_strings(strings: list[str]) -> list[dict]:
    """3.1's targets in the stored (3.0.1) form."""
    out = []
    for text in strings:
        type_, sep, value = text.partition(":")
        out.append(
            {"type": type_, "values": [value]} if sep and type_ and value else {"type": PLAIN_TARGET, "values": [text]}
        )
    return out


def targets_as_strings(targets: list[dict] | None) -> list[str] | None:
    """Stored (3.0.1) targets in 3.1's form: one string per value."""
    if targets is None:
        return None
    return [
        value if target["type"] == PLAIN_TARGET else f"{target['type']}:{value}"
        for target in targets
        for value in (v if isinstance(v, str) else json.dumps(v) for v in target["values"] if not isinstance(v, dict))
    ]


class _Checker:
    def __init__(self, version: str = V301):
        self.problems: list[Problem] = []
        self.version = version

    def fail(self, field: str, code: str, message: str) -> None:
        self.problems.append(Problem(code, message, field))

    def string(self, obj: dict, key: str, path: str, *, required=False, min_length=0, max_length=None):
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "This field is required.")
            return None
        if not isinstance(value, str):
            self.fail(path, "invalid", "A string.")
            return None
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            self.fail(path, "invalid_length", f"Between {min_length} and {max_length} characters.")
            return None
        return value

    def boolean(self, obj: dict, key: str, path: str):
        value = obj.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(path, "invalid", "true or false.")
            return None
        return value

    def integer(self, obj: dict, key: str, path: str, *, required=False, minimum=-INT32 - 1, maximum=INT32):
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "This field is required.")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.fail(path, "invalid", f"An integer from {minimum} to {maximum}.")
            return None
        return value

    def array(self, obj: dict, key: str, path: str, item, *, required=False, min_items=0):
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "This field is required.")
            return None
        if not isinstance(value, list):
            self.fail(path, "invalid", "A list.")
            return None
        if len(value) < min_items:
            self.fail(path, "too_short", f"At least {min_items} item(s).")
            return None
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def object(self, value, path: str) -> bool:
        if not isinstance(value, dict):
            self.fail(path, "invalid", "An object.")
            return False
        return True

    def date_time(self, obj: dict, key: str, path: str, *, required=False):
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "This field is required.")
            return None
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None or parsed.tzinfo is None:
            self.fail(path, "invalid_datetime", "An ISO 8601 date-time with its UTC offset.")
            return None
        return value

    def duration(self, obj: dict, key: str, path: str):
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or parse_duration(value) is None:
            self.fail(path, "invalid_duration", "An ISO 8601 duration of at most a century, e.g. PT1H.")
            return None
        return value

    # --- the specification's shared schemas ---------------------------------------------

    def values_map(self, value, path: str):
        if not self.object(value, path):
            return None
        type_ = self.string(value, "type", f"{path}.type", required=True, min_length=1, max_length=128)
        values = value.get("values")
        if not isinstance(values, list):
            self.fail(f"{path}.values", "required" if values is None else "invalid", "A list of values.")
            return None
        for i, v in enumerate(values):
            point = (
                isinstance(v, dict)
                and set(v) == {"x", "y"}
                and all(isinstance(v[k], (int, float)) and not isinstance(v[k], bool) for k in "xy")
            )
            if not (isinstance(v, (int, float, str, bool)) or point):
                self.fail(f"{path}.values[{i}]", "invalid", "A number, string, boolean or {x, y} point.")
        return {"type": type_, "values": values}

    def values_maps(self, obj: dict, key: str, path: str):
        return self.array(obj, key, path, self.values_map)

    def targets(self, obj: dict, key: str, path: str):
        """Value maps in 3.0.1; strings in 3.1, read into the stored form."""
        if self.version == V301:
            return self.values_maps(obj, key, path)

        def target(value, where):
            if not isinstance(value, str) or not 1 <= len(value) <= 128:
                self.fail(where, "invalid", "A string of 1 to 128 characters.")
                return None
            return value

        strings = self.array(obj, key, path, target)
        if strings is None or None in strings:
            return None
        return targets_from_strings(strings)

    def interval_period(self, obj: dict, key: str, path: str, *, required=False):
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "This field is required.")
            return None
        if not self.object(value, path):
            return None
        period = {"start": self.date_time(value, "start", f"{path}.start", required=True)}
        if value.get("duration") is not None:
            period["duration"] = self.duration(value, "duration", f"{path}.duration")
        if value.get("randomizeStart") is not None:
            period["randomizeStart"] = self.duration(value, "randomizeStart", f"{path}.randomizeStart")
        return period

    def interval(self, value, path: str):
        if not self.object(value, path):
            return None
        out = {"id": self.integer(value, "id", f"{path}.id", required=True)}
        if value.get("intervalPeriod") is not None:
            out["intervalPeriod"] = self.interval_period(value, "intervalPeriod", f"{path}.intervalPeriod")
        out["payloads"] = self.array(value, "payloads", f"{path}.payloads", self.values_map, required=True, min_items=1)
        return out

    def event_payload_descriptor(self, value, path: str):
        if not self.object(value, path):
            return None
        return {
            "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
            "payloadType": self.string(
                value, "payloadType", f"{path}.payloadType", required=True, min_length=1, max_length=128
            ),
            "units": self.string(value, "units", f"{path}.units"),
            "currency": self.string(value, "currency", f"{path}.currency"),
        }

    def report_payload_descriptor(self, value, path: str):
        if not self.object(value, path):
            return None
        accuracy = value.get("accuracy")
        if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))):
            self.fail(f"{path}.accuracy", "invalid", "A number.")
        return {
            "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
            "payloadType": self.string(
                value, "payloadType", f"{path}.payloadType", required=True, min_length=1, max_length=128
            ),
            "readingType": self.string(value, "readingType", f"{path}.readingType"),
            "units": self.string(value, "units", f"{path}.units"),
            "accuracy": accuracy,
            "confidence": self.integer(value, "confidence", f"{path}.confidence", minimum=0, maximum=100),
        }

    def report_descriptor(self, value, path: str):
        if not self.object(value, path):
            return None
        out = {
            "payloadType": self.string(
                value, "payloadType", f"{path}.payloadType", required=True, min_length=1, max_length=128
            ),
            "readingType": self.string(value, "readingType", f"{path}.readingType"),
            "units": self.string(value, "units", f"{path}.units"),
            "targets": self.targets(value, "targets", f"{path}.targets"),
        }
        if self.version == V310:
            out["reportIntervals"] = self.string(value, "reportIntervals", f"{path}.reportIntervals")
        for key, default in (("aggregate", False), ("historical", True)):
            flag = self.boolean(value, key, f"{path}.{key}")
            out[key] = default if flag is None else flag
        for key, default in (("startInterval", -1), ("numIntervals", -1), ("frequency", -1), ("repeat", 1)):
            number = self.integer(value, key, f"{path}.{key}")
            out[key] = default if number is None else number
        return out

    def object_id(self, obj: dict, key: str, path: str, *, required=True):
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "This field is required.")
            return None
        if not isinstance(value, str) or not OBJECT_ID.match(value):
            self.fail(path, "invalid", "An object ID: 1 to 128 of a-z, A-Z, 0-9, _ and -.")
            return None
        return value

    def done(self, out: dict) -> dict:
        if self.problems:
            raise Invalid(self.problems)
        return out


def parse_duration(text: str) -> timedelta | None:
    match = DURATION.match(text)
    if not match:
        return None
    sign, years, months, days, unit, hours, minutes, seconds = match.groups()
    if years or months:
        return None  # calendar lengths have no fixed duration; no interval here needs them
    try:
        total = timedelta(
            days=int(days or 0) * (7 if unit == "W" else 1),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
    except OverflowError:
        return None
    if total > MAX_DURATION:
        return None
    return -total if sign else total


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return text if text != "PT" else "PT0S"


def format_datetime(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _body(data, version: str) -> _Checker:
    if not isinstance(data, dict):
        raise Invalid(Problem("invalid", "The body is a JSON object.", None))
    return _Checker(version)


def clean_program(data, version: str = V301) -> dict:
    c = _body(data, version)
    out = {"programName": c.string(data, "programName", "programName", required=True, min_length=1, max_length=128)}
    for key in ("programLongName", "retailerName", "retailerLongName", "programType", "principalSubdivision"):
        out[key] = c.string(data, key, key)
    out["country"] = c.string(data, "country", "country", min_length=2, max_length=2)
    out["timeZoneOffset"] = c.duration(data, "timeZoneOffset", "timeZoneOffset")
    out["intervalPeriod"] = c.interval_period(data, "intervalPeriod", "intervalPeriod")

    def description(value, path):
        if c.object(value, path):
            return {"URL": c.string(value, "URL", f"{path}.URL", required=True, min_length=1)}
        return None

    out["programDescriptions"] = c.array(data, "programDescriptions", "programDescriptions", description)
    out["bindingEvents"] = c.boolean(data, "bindingEvents", "bindingEvents")
    out["localPrice"] = c.boolean(data, "localPrice", "localPrice")

    def descriptor(value, path):
        if isinstance(value, dict) and value.get("objectType") == "REPORT_PAYLOAD_DESCRIPTOR":
            return c.report_payload_descriptor(value, path)
        return c.event_payload_descriptor(value, path)

    out["payloadDescriptors"] = c.array(data, "payloadDescriptors", "payloadDescriptors", descriptor)
    if version == V310:
        out["attributes"] = c.values_maps(data, "attributes", "attributes")
    out["targets"] = c.targets(data, "targets", "targets")
    return c.done(out)


def clean_event(data, version: str = V301) -> dict:
    c = _body(data, version)
    out = {
        "programID": c.object_id(data, "programID", "programID"),
        "eventName": c.string(data, "eventName", "eventName"),
        "priority": c.integer(data, "priority", "priority", minimum=0),
        "targets": c.targets(data, "targets", "targets"),
        "reportDescriptors": c.array(data, "reportDescriptors", "reportDescriptors", c.report_descriptor),
        "payloadDescriptors": c.array(data, "payloadDescriptors", "payloadDescriptors", c.event_payload_descriptor),
        "intervalPeriod": c.interval_period(data, "intervalPeriod", "intervalPeriod"),
        "intervals": c.array(data, "intervals", "intervals", c.interval, required=True),
    }
    if version == V310:
        out["duration"] = c.duration(data, "duration", "duration")
    return c.done(out)


def clean_report(data, version: str = V301) -> dict:
    c = _body(data, version)

    def resource(value, path):
        if not c.object(value, path):
            return None
        return {
            "resourceName": c.string(
                value, "resourceName", f"{path}.resourceName", required=True, min_length=1, max_length=128
            ),
            "intervalPeriod": c.interval_period(value, "intervalPeriod", f"{path}.intervalPeriod"),
            "intervals": c.array(value, "intervals", f"{path}.intervals", c.interval, required=True),
        }

    out = {
        "programID": c.object_id(data, "programID", "programID", required=version == V301),
        "eventID": c.object_id(data, "eventID", "eventID"),
        "clientName": c.string(data, "clientName", "clientName", required=True, min_length=1, max_length=128),
        "reportName": c.string(data, "reportName", "reportName"),
        "payloadDescriptors": c.array(data, "payloadDescriptors", "payloadDescriptors", c.report_payload_descriptor),
        "resources": c.array(data, "resources", "resources", resource, required=True),
    }
    return c.done(out)


def clean_subscription(data, version: str = V301) -> dict:
    c = _body(data, version)

    def operation(value, path):
        if not c.object(value, path):
            return None
        objects = c.array(value, "objects", f"{path}.objects", lambda v, p: v, required=True, min_items=1) or []
        for i, o in enumerate(objects):
            if o not in OBJECT_TYPES:
                c.fail(f"{path}.objects[{i}]", "invalid_choice", f"One of {', '.join(OBJECT_TYPES)}.")
        operations = (
            c.array(value, "operations", f"{path}.operations", lambda v, p: v, required=True, min_items=1) or []
        )
        for i, o in enumerate(operations):
            if not isinstance(o, str) or (o not in OPERATIONS and o not in VERB_OPERATIONS):
                c.fail(f"{path}.operations[{i}]", "invalid_choice", f"One of {', '.join(OPERATIONS)}.")
        if c.problems:
            return None
        operations = list(dict.fromkeys(VERB_OPERATIONS.get(o, o) for o in operations))
        url = c.string(value, "callbackUrl", f"{path}.callbackUrl", required=True, min_length=1)
        return {
            "objects": objects,
            "operations": operations,
            "callbackUrl": url,
            "bearerToken": c.string(value, "bearerToken", f"{path}.bearerToken"),
        }

    out = {
        "clientName": c.string(data, "clientName", "clientName", required=True, min_length=1, max_length=128),
        "programID": c.object_id(data, "programID", "programID", required=version == V301),
        "objectOperations": c.array(
            data, "objectOperations", "objectOperations", operation, required=True, min_items=1
        ),
        "targets": c.targets(data, "targets", "targets"),
    }
    return c.done(out)


def _resource_fields(c: _Checker, data: dict) -> dict:
    return {
        "resourceName": c.string(data, "resourceName", "resourceName", required=True, min_length=1, max_length=128),
        "attributes": c.values_maps(data, "attributes", "attributes"),
        "targets": c.targets(data, "targets", "targets"),
    }


def _request_kind(c: _Checker, data: dict, kinds: tuple[str, ...]) -> None:
    """3.1's objectType of a VEN or resource request, which says who writes it (optional here)."""
    kind = data.get("objectType")
    if c.version == V310 and kind is not None and kind not in kinds:
        c.fail("objectType", "invalid_choice", f"One of {', '.join(kinds)}.")


def clean_resource(data, version: str = V301) -> dict:
    """A resource's fields; in 3.1 also venID (the VEN it belongs to, in the body) and clientID."""
    c = _body(data, version)
    out = _resource_fields(c, data)
    if version == V310:
        _request_kind(c, data, ("BL_RESOURCE_REQUEST", "VEN_RESOURCE_REQUEST"))
        out["venID"] = c.object_id(data, "venID", "venID", required=False)
        out["clientID"] = c.string(data, "clientID", "clientID", min_length=1, max_length=128)
    return c.done(out)


def clean_ven(data, version: str = V301) -> dict:
    """A VEN's fields; in 3.1 also clientID (the VEN client it is, named by business logic)."""
    c = _body(data, version)

    def resource(value, path):
        if not c.object(value, path):
            return None
        inner = _Checker()
        fields = _resource_fields(inner, value)
        c.problems += [Problem(p.code, p.message, f"{path}.{p.field}") for p in inner.problems]
        return fields

    out = {
        "venName": c.string(data, "venName", "venName", required=True, min_length=1, max_length=128),
        "attributes": c.values_maps(data, "attributes", "attributes"),
        "targets": c.targets(data, "targets", "targets"),
        "resources": c.array(data, "resources", "resources", resource) if version == V301 else None,
    }
    if version == V310:
        _request_kind(c, data, ("BL_VEN_REQUEST", "VEN_VEN_REQUEST"))
        out["clientID"] = c.string(data, "clientID", "clientID", min_length=1, max_length=128)
    return c.done(out)


def target_keys(targets: list[dict] | None) -> list[str]:
    """'TYPE:value' for each value of each target, the form events are filtered by."""
    return sorted({f"{t['type']}:{v}" for t in targets or [] for v in t["values"] if not isinstance(v, dict)})
