"""The HTTP shim's JSON: request bodies into `Event`s, results and errors into JSON objects.

Field names are the seeds' (`site_id`, `event_type`, `path`, `user_id`, `timestamp`, ...).
Decoding is strict: unknown fields, duplicate keys, NaN and Infinity, values of the wrong type,
lone surrogates and timestamps that are not RFC 3339 with an offset are all refused, with the
field named.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Any

from analytics.v1.event_pb2 import Event
from analytics.v1.report_pb2 import Stats

from ingest_server.ingestor import Outcome
from ingest_server.validation import listed_property_violations, property_count_violations
from stack.errors import FieldViolation, InvalidArgument, ServiceError

_TEXT_FIELDS = ("event_id", "site_id", "event_type", "path", "user_id", "referrer")
_KNOWN_FIELDS = frozenset((*_TEXT_FIELDS, "timestamp", "properties"))
_TIMESTAMP_PROBLEM = "must be an RFC 3339 date-time with an offset, like 2025-11-14T10:00:00Z"
# ASCII digits only: `\d` would take any script's (U+FF11, U+0661, ...), which int() reads.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
# The instants a Python datetime can hold, in seconds since the epoch: 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59Z (a time in year 1 or 9999 whose offset moves it out of them is no instant).
_FIRST_SECOND = (date.min.toordinal() - _EPOCH_DAY) * 86400
_LAST_SECOND = (date.max.toordinal() - _EPOCH_DAY) * 86400 + 86399


def parse_body(body: bytes) -> Any:
    """The JSON value of a request body, or InvalidArgument on field `body`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument.single("body", "is not valid UTF-8") from None
    try:
        return _JSON_DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise InvalidArgument.single(
            "body", f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError:  # an integer of more digits than Python converts
        raise InvalidArgument.single("body", "holds a number too long to read") from None
    except RecursionError:
        raise InvalidArgument.single("body", "is nested too deeply") from None


def event_from_json(value: Any) -> Event:
    """An Event from one JSON object; InvalidArgument names every field of the wrong type."""
    if type(value) is dict and value.keys() <= _KNOWN_FIELDS:
        # Most events are plainly well-typed: one constructor call takes them, refusing (with
        # TypeError or UnicodeEncodeError) any value that is not a string, or holds a lone
        # surrogate; only those go through the checks below that name the field at fault.
        properties = value.get("properties")
        timestamp = value.get("timestamp")
        if properties is None or type(properties) is dict:
            try:
                if timestamp is None:
                    return Event(**value)
                seconds, nanos = rfc3339_instant(timestamp)
                return Event(**{**value, "timestamp": {"seconds": seconds, "nanos": nanos}})
            except (TypeError, ValueError):
                pass
    return _checked_event(value)


def _checked_event(value: Any) -> Event:
    if not isinstance(value, dict):
        raise InvalidArgument.single("body", "must be a JSON object (an event)")
    violations: list[FieldViolation] = []
    if isinstance(value, _RepeatedKeys):
        violations += [_repeated(key, key, "body") for key in value.repeated]
    unknown = sorted(key for key in value if key not in _KNOWN_FIELDS)
    violations += [_unknown_field(key) for key in unknown]
    event = Event()
    for name in _TEXT_FIELDS:
        text = value.get(name)
        if text is None:
            continue
        if problem := _not_text(text):
            violations.append(FieldViolation(name, problem))
        else:
            setattr(event, name, text)
    timestamp = value.get("timestamp")
    if timestamp is not None:
        try:
            event.timestamp.seconds, event.timestamp.nanos = rfc3339_instant(timestamp)
        except ValueError:
            violations.append(FieldViolation("timestamp", _TIMESTAMP_PROBLEM))
    properties = value.get("properties")
    if properties is not None:
        violations += _fill_properties(event, properties)
    if violations:
        raise InvalidArgument(violations)
    return event


def events_from_json(value: Any) -> list[Event | InvalidArgument]:
    """The events of a JSON array, each decoded or refused on its own."""
    if not isinstance(value, list):
        raise InvalidArgument.single("body", "must be a JSON array of events")
    items: list[Event | InvalidArgument] = []
    for element in value:
        try:
            items.append(event_from_json(element))
        except InvalidArgument as error:
            items.append(error)
    return items


def outcome_to_json(outcome: Outcome) -> dict[str, Any]:
    if outcome.accepted:
        return {"index": outcome.index, "status": "accepted", "event_id": outcome.event_id}
    return {
        "index": outcome.index,
        "status": "rejected",
        "field_violations": _violations_to_json(outcome.violations),
    }


def stats_to_json(stats: Stats) -> dict[str, Any]:
    """The seeds' shape, with the days covered after `date` (nulls for all time)."""
    return {
        "site_id": stats.site_id,
        "date": stats.date or None,
        "start_date": stats.start_date or None,
        "end_date": stats.end_date or None,
        "total_views": stats.total_views,
        "unique_users": stats.unique_users,
        "top_paths": [{"path": p.path, "views": p.views} for p in stats.top_paths],
    }


def error_to_json(error: ServiceError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if isinstance(error, InvalidArgument):
        body["field_violations"] = _violations_to_json(error.violations)
    return body


def _violations_to_json(violations: Iterable[FieldViolation]) -> list[dict[str, str]]:
    return [{"field": v.field, "description": v.description} for v in violations]


class _RepeatedKeys(dict[str, Any]):
    """A JSON object that held some keys more than once. It is refused where it is read, so
    that the error names the field (`path`, `properties[a]`) and a batch refuses only the
    event that holds it."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    repeated = _RepeatedKeys(result)
    counts = Counter(key for key, _ in pairs)
    repeated.repeated = [key for key, count in counts.items() if count > 1]
    return repeated


def _constant(name: str) -> None:
    raise InvalidArgument.single("body", f"{name} is not a JSON value")


# One decoder for every body: `json.loads` with hooks builds a new one per call.
_JSON_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def _not_text(value: object) -> str | None:
    """Why `value` cannot be a text field, or None if it can."""
    if not isinstance(value, str):
        return "must be a string"
    if not encodes_as_utf8(value):
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def encodes_as_utf8(text: str) -> bool:
    """False for text holding a lone surrogate: from JSON's `\\ud800`, or decoded with
    surrogateescape from bytes that were not UTF-8. Neither can be stored or sent on."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fill_properties(event: Event, properties: object) -> list[FieldViolation]:
    if not isinstance(properties, dict):
        return [FieldViolation("properties", "must be an object of strings")]
    if too_many := property_count_violations(len(properties)):
        return too_many
    violations = []
    if isinstance(properties, _RepeatedKeys):
        violations += [
            _repeated(key, f"properties[{key}]", "properties") for key in properties.repeated
        ]
    for key, value in properties.items():
        if _not_text(key):
            violations.append(FieldViolation("properties", "keys must be valid Unicode"))
        elif problem := _not_text(value):
            field = f"properties[{key}]" if _is_short_text(key) else "properties"
            violations.append(FieldViolation(field, problem))
        else:
            event.properties[key] = value
    return listed_property_violations(violations)


def rfc3339_instant(value: object) -> tuple[int, int]:
    """The (seconds, nanos) since the epoch of an RFC 3339 date-time with an offset, as a
    protobuf Timestamp holds them; ValueError for anything else. Fractions of a second beyond
    microseconds are dropped. Computed from the fields: a datetime and `FromDatetime` cost
    two thirds of decoding an event."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    match = _RFC3339.fullmatch(value)
    if not match:
        raise ValueError("not RFC 3339")
    year, month, day, hour, minute, second, fraction, utc, sign, offset_h, offset_m = match.groups()
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError("not a time of day")
    days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_DAY  # ValueError: no day
    instant = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if not utc:
        offset_hours, offset_minutes = int(offset_h), int(offset_m)
        if offset_hours > 23 or offset_minutes > 59:
            raise ValueError("not an offset")
        offset = offset_hours * 3600 + offset_minutes * 60
        instant += -offset if sign == "+" else offset
    if not _FIRST_SECOND <= instant <= _LAST_SECOND:
        raise ValueError("no instant")
    return instant, int(fraction[:6].ljust(6, "0")) * 1000 if fraction else 0


def _repeated(key: str, field: str, field_of_any_key: str) -> FieldViolation:
    """`key` appears more than once: named as `field` where it is short, printable text."""
    return FieldViolation(
        field if _is_short_text(key) else field_of_any_key, "appears more than once"
    )


def _unknown_field(key: str) -> FieldViolation:
    if _is_short_text(key):
        return FieldViolation(key, "is not a known field")
    return FieldViolation("body", "holds an unknown field")


def _is_short_text(key: str) -> bool:
    return len(key) <= 64 and key.isprintable() and _not_text(key) is None
