"""What a valid event is. Both doors (gRPC and the HTTP shim) run every event through here,
so an event refused by one is refused by the other with the same words.

Lengths count characters (Unicode code points). No text field may hold a control character
(U+0000-U+001F, U+007F-U+009F): PostgreSQL cannot store U+0000 and none of these belong in an
identifier, path or label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from analytics.v1.event_pb2 import Event
from google.protobuf.timestamp_pb2 import Timestamp

from ingest_server.event_ids import new_event_id
from stack.errors import FieldViolation, InvalidArgument


@dataclass(frozen=True)
class Limits:
    """Every size and range an event must respect; README and docs list the same numbers."""

    max_event_id_length: int = 128
    max_site_id_length: int = 128
    max_event_type_length: int = 100
    max_path_length: int = 2048
    max_user_id_length: int = 256
    max_referrer_length: int = 2048
    max_properties: int = 32
    max_property_key_length: int = 64
    max_property_value_length: int = 1024
    # How far ahead of the server's clock a client's timestamp may be.
    max_clock_skew: timedelta = timedelta(hours=1)
    earliest_timestamp: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_batch_events: int = 1000


LIMITS = Limits()

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Printable ASCII without space: fits a NATS header (Nats-Msg-Id) and any log line.
_EVENT_ID = re.compile(r"[\x21-\x7e]+")
_SITE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_event(event: Event, received_at: datetime) -> Event:
    """The event as it goes on the stream: checked, with event_id and timestamp filled in.

    Raises InvalidArgument listing every violation found, not only the first.
    """
    violations: list[FieldViolation] = []
    add = violations.append

    if event.event_id:
        if len(event.event_id) > LIMITS.max_event_id_length:
            add(_too_long("event_id", LIMITS.max_event_id_length))
        elif not _EVENT_ID.fullmatch(event.event_id):
            add(FieldViolation("event_id", "must be printable ASCII without spaces"))
    violations += site_id_violations(event.site_id)
    violations += event_type_violations(event.event_type)
    if not event.path:
        add(_required("path"))
    elif not event.path.startswith("/"):
        add(FieldViolation("path", "must start with '/'"))
    else:
        violations += _text_violations("path", event.path, LIMITS.max_path_length)
    violations += _text_violations("user_id", event.user_id, LIMITS.max_user_id_length)
    violations += _text_violations("referrer", event.referrer, LIMITS.max_referrer_length)
    violations += _properties_violations(event)
    if event.HasField("timestamp"):
        violations += _timestamp_violations(event.timestamp, received_at)

    if violations:
        raise InvalidArgument(violations)

    normalized = Event()
    normalized.CopyFrom(event)
    if not normalized.event_id:
        normalized.event_id = new_event_id()
    if not normalized.HasField("timestamp"):
        normalized.timestamp.FromDatetime(received_at)
    return normalized


def site_id_violations(site_id: str, field: str = "site_id") -> list[FieldViolation]:
    """Site ids are letters, digits, '.', '_' and '-', starting with a letter or digit, so a
    domain name ('example.com') is a valid site id."""
    if not site_id:
        return [_required(field)]
    if len(site_id) > LIMITS.max_site_id_length:
        return [_too_long(field, LIMITS.max_site_id_length)]
    if not _SITE_ID.fullmatch(site_id):
        return [
            FieldViolation(
                field,
                "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'",
            )
        ]
    return []


def event_type_violations(event_type: str, field: str = "event_type") -> list[FieldViolation]:
    if not event_type:
        return [_required(field)]
    if event_type != event_type.strip():
        return [FieldViolation(field, "must not start or end with whitespace")]
    return _text_violations(field, event_type, LIMITS.max_event_type_length)


def batch_size_violations(count: int, field: str = "events") -> list[FieldViolation]:
    if count > LIMITS.max_batch_events:
        return [FieldViolation(field, f"at most {LIMITS.max_batch_events} events per batch")]
    return []


def _text_violations(field: str, value: str, max_length: int) -> list[FieldViolation]:
    if len(value) > max_length:
        return [_too_long(field, max_length)]
    if _CONTROL.search(value):
        return [FieldViolation(field, "must not contain control characters")]
    return []


def _properties_violations(event: Event) -> list[FieldViolation]:
    properties = event.properties
    if len(properties) > LIMITS.max_properties:
        return [FieldViolation("properties", f"at most {LIMITS.max_properties} entries")]
    violations: list[FieldViolation] = []
    for key in sorted(properties):
        if not key:
            violations.append(FieldViolation("properties", "keys must not be empty"))
        elif len(key) > LIMITS.max_property_key_length:
            violations.append(
                FieldViolation(
                    "properties",
                    f"keys must be at most {LIMITS.max_property_key_length} characters",
                )
            )
        elif _CONTROL.search(key):
            violations.append(
                FieldViolation("properties", "keys must not contain control characters")
            )
        else:
            violations += _text_violations(
                f"properties[{key}]", properties[key], LIMITS.max_property_value_length
            )
    return violations


def _timestamp_violations(timestamp: Timestamp, received_at: datetime) -> list[FieldViolation]:
    try:
        when = timestamp.ToDatetime(tzinfo=UTC)
    except ValueError:
        return [FieldViolation("timestamp", "is not a valid time")]
    if when < LIMITS.earliest_timestamp:
        return [
            FieldViolation(
                "timestamp", f"must not be before {LIMITS.earliest_timestamp.isoformat()}"
            )
        ]
    if when > received_at + LIMITS.max_clock_skew:
        minutes = int(LIMITS.max_clock_skew.total_seconds() // 60)
        return [
            FieldViolation(
                "timestamp", f"must not be more than {minutes} minutes ahead of the server's clock"
            )
        ]
    return []


def _required(field: str) -> FieldViolation:
    return FieldViolation(field, "is required")


def _too_long(field: str, max_length: int) -> FieldViolation:
    return FieldViolation(field, f"must be at most {max_length} characters")
