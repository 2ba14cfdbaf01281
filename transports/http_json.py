"""JSON for the HTTP door, strict as our contract is: a body that is not UTF-8, not JSON, holds
NaN or Infinity, or repeats a key is refused (a repeated key where it is read, so that the error
names the field); timestamps are RFC 3339 with an offset; errors become JSON objects naming the
fields at fault.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Any

from core.errors import FieldViolation, InvalidArgument, RateLimited, ServiceError

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


def error_to_json(error: ServiceError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if isinstance(error, InvalidArgument):
        body["field_violations"] = violations_to_json(error.violations)
    elif isinstance(error, RateLimited):
        body["limit"] = error.limit
        body["subject"] = error.subject
    return body


def violations_to_json(violations: Iterable[FieldViolation]) -> list[dict[str, str]]:
    return [{"field": v.field, "description": v.description} for v in violations]


class RepeatedKeys(dict[str, Any]):
    """A JSON object that held some keys more than once. It is refused where it is read, so
    that the error names the field (`path`, `properties[a]`) and a batch refuses only the
    event that holds it."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    repeated = RepeatedKeys(result)
    counts = Counter(key for key, _ in pairs)
    repeated.repeated = [key for key, count in counts.items() if count > 1]
    return repeated


def _constant(name: str) -> None:
    raise InvalidArgument.single("body", f"{name} is not a JSON value")


# One decoder for every body: `json.loads` with hooks builds a new one per call.
_JSON_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def not_text(value: object) -> str | None:
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


def repeated_key(key: str, field: str, field_of_any_key: str) -> FieldViolation:
    """`key` appears more than once: named as `field` where it is short, printable text."""
    return FieldViolation(
        field if is_short_text(key) else field_of_any_key, "appears more than once"
    )


def is_short_text(key: str) -> bool:
    return len(key) <= 64 and key.isprintable() and not_text(key) is None
