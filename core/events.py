"""What a valid event is. Both doors (gRPC and the HTTP shim) run every event through here,
so an event refused by one is refused by the other with the same words.

Lengths count characters (Unicode code points). No text field may hold a control character
(U+0000-U+001F, U+007F-U+009F): PostgreSQL cannot store U+0000 and none of these belong in an
identifier, path or label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from analytics.v1.event_pb2 import Event
from google.protobuf.internal.containers import ScalarMap
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import FieldViolation, InvalidArgument
from core.event_ids import new_event_id


@dataclass(frozen=True)
class Limits:
    """Every size and range an event must respect; README and docs list the same numbers."""

    max_event_id_length: int = 128
    max_site_id_length: int = 128
    max_event_type_length: int = 100
    # In UTF-8 bytes, not characters: the path is part of the key of the per-path aggregates,
    # and PostgreSQL refuses an index entry over 2704 bytes; site_id and event_type take at
    # most 528 of them.
    max_path_bytes: int = 2048
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
_EARLIEST_SECONDS = int(LIMITS.earliest_timestamp.timestamp())
_MAX_EVENT_ID = LIMITS.max_event_id_length

# Property violations an event's error lists; one more entry counts the rest. An event can
# have 32 bad properties, each named by a key of up to 256 bytes: listing them all made one
# event's gRPC error exceed gRPC's 8 KiB limit on trailers, and a batch's answer a client's
# 4 MiB limit on messages.
MAX_LISTED_PROPERTY_VIOLATIONS = 5

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Printable ASCII without space: fits a NATS header (Nats-Msg-Id) and any log line.
_EVENT_ID = re.compile(r"[\x21-\x7e]+")
_SITE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_event(
    event: Event, received_at: datetime, new_ids: Iterator[str] | None = None
) -> Event:
    """Check the event and complete it in place for the stream: an event_id (the next of
    `new_ids`, or a new one) and a timestamp where it has none. Returns the same event
    (copying it cost a tenth of ingestion).

    Raises InvalidArgument listing every violation found, not only the first.
    """
    event_id = event.event_id
    site_id = event.site_id
    event_type = event.event_type
    path = event.path
    user_id = event.user_id
    referrer = event.referrer
    timestamp = event.timestamp
    seconds = timestamp.seconds
    has_timestamp = seconds != 0 or event.HasField("timestamp")
    # Most events are plainly valid: one cheap test says so (their properties are checked on
    # their own), and only the others go through the checks that say what is wrong. Each
    # field is read once (reads are what validation costs); printable text holds no control
    # character; a timestamp a second short of the latest allowed needs no comparison of
    # nanoseconds.
    if (
        site_id in _valid_site_ids
        and event_type in _valid_event_types
        and 0 < len(path) <= LIMITS.max_path_bytes
        and path[0] == "/"
        and len(user_id) <= LIMITS.max_user_id_length
        and len(referrer) <= LIMITS.max_referrer_length
        and (path + user_id + referrer).isprintable()
        and (path.isascii() or len(path.encode()) <= LIMITS.max_path_bytes)
        and (not event_id or (len(event_id) <= _MAX_EVENT_ID and _EVENT_ID.fullmatch(event_id)))
        and (
            not has_timestamp
            or (
                _EARLIEST_SECONDS <= seconds < _latest_allowed(received_at)[0]
                and 0 <= timestamp.nanos < 1_000_000_000
            )
        )
    ):
        properties = event.properties
        violations = (
            _properties_violations(properties)
            if properties and not _plain_properties(properties)
            else []
        )
    else:
        violations = _violations(event, received_at)
    if violations:
        raise InvalidArgument(violations)
    if not event_id:
        event.event_id = new_event_id() if new_ids is None else next(new_ids)
    if not has_timestamp:
        timestamp.FromDatetime(received_at)
    return event


def _violations(event: Event, received_at: datetime) -> list[FieldViolation]:
    """Every violation found, listed in the order clients have always seen them."""
    violations: list[FieldViolation] = []
    if event.event_id:
        violations += _event_id_violations(event.event_id)
    if event.site_id not in _valid_site_ids:
        violations += _remembered(site_id_violations(event.site_id), event.site_id, _valid_site_ids)
    if event.event_type not in _valid_event_types:
        violations += _remembered(
            event_type_violations(event.event_type), event.event_type, _valid_event_types
        )
    violations += _path_violations(event.path)
    if event.user_id:
        violations += _text_violations("user_id", event.user_id, LIMITS.max_user_id_length)
    if event.referrer:
        violations += _text_violations("referrer", event.referrer, LIMITS.max_referrer_length)
    if event.properties:
        violations += _properties_violations(event.properties)
    if event.HasField("timestamp"):
        violations += _timestamp_violations(event.timestamp, received_at)
    return violations


# Site ids and event types that passed, so that the few a deployment sees are checked once.
_valid_site_ids: set[str] = set()
_valid_event_types: set[str] = set()
_MAX_REMEMBERED = 10_000


def _remembered(
    violations: list[FieldViolation], value: str, valid: set[str]
) -> list[FieldViolation]:
    if not violations:
        if len(valid) >= _MAX_REMEMBERED:
            valid.clear()
        valid.add(value)
    return violations


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


def _event_id_violations(event_id: str) -> list[FieldViolation]:
    if len(event_id) > LIMITS.max_event_id_length:
        return [_too_long("event_id", LIMITS.max_event_id_length)]
    if not _EVENT_ID.fullmatch(event_id):
        return [FieldViolation("event_id", "must be printable ASCII without spaces")]
    return []


def _path_violations(path: str) -> list[FieldViolation]:
    if not path:
        return [_required("path")]
    if path[0] != "/":
        return [FieldViolation("path", "must start with '/'")]
    if len(path.encode("utf-8", "surrogatepass")) > LIMITS.max_path_bytes:
        return [FieldViolation("path", f"must be at most {LIMITS.max_path_bytes} bytes in UTF-8")]
    return _text_violations("path", path, LIMITS.max_path_bytes)


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


def _plain_properties(properties: ScalarMap[str, str]) -> bool:
    """True for properties that plainly break no rule; others need _properties_violations."""
    return len(properties) <= LIMITS.max_properties and all(
        0 < len(key) <= LIMITS.max_property_key_length
        and len(value) <= LIMITS.max_property_value_length
        and (key + value).isprintable()
        for key, value in properties.items()
    )


def property_count_violations(count: int) -> list[FieldViolation]:
    """Shared with the HTTP door, which checks the count before it reads the entries."""
    if count > LIMITS.max_properties:
        return [FieldViolation("properties", f"at most {LIMITS.max_properties} entries")]
    return []


def listed_property_violations(violations: list[FieldViolation]) -> list[FieldViolation]:
    """An event's property violations as its error lists them: the first
    MAX_LISTED_PROPERTY_VIOLATIONS, then one counting the rest. Shared with the HTTP door."""
    if len(violations) <= MAX_LISTED_PROPERTY_VIOLATIONS:
        return violations
    unlisted = len(violations) - MAX_LISTED_PROPERTY_VIOLATIONS
    return [
        *violations[:MAX_LISTED_PROPERTY_VIOLATIONS],
        FieldViolation("properties", f"invalid entries not listed: {unlisted}"),
    ]


def _properties_violations(properties: ScalarMap[str, str]) -> list[FieldViolation]:
    if too_many := property_count_violations(len(properties)):
        return too_many
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
    return listed_property_violations(violations)


def _timestamp_violations(timestamp: Timestamp, received_at: datetime) -> list[FieldViolation]:
    seconds, nanos = timestamp.seconds, timestamp.nanos
    if not 0 <= nanos < 1_000_000_000:
        return [FieldViolation("timestamp", "is not a valid time")]
    if seconds < _EARLIEST_SECONDS:
        return [
            FieldViolation(
                "timestamp", f"must not be before {LIMITS.earliest_timestamp.isoformat()}"
            )
        ]
    if (seconds, nanos) > _latest_allowed(received_at):
        minutes = int(LIMITS.max_clock_skew.total_seconds() // 60)
        return [
            FieldViolation(
                "timestamp", f"must not be more than {minutes} minutes ahead of the server's clock"
            )
        ]
    return []


def _latest_allowed(received_at: datetime) -> tuple[int, int]:
    """The latest (seconds, nanos) a client's timestamp may hold. A batch shares one
    received_at, so the last answer is kept, found by identity: hashing an aware datetime for a
    cache lookup was 2 % of IngestBatch's CPU."""
    last_received_at, latest_allowed = _last_latest_allowed[0]
    if received_at is not last_received_at:
        latest = received_at + LIMITS.max_clock_skew
        latest_allowed = int(latest.timestamp()), latest.microsecond * 1000
        _last_latest_allowed[0] = received_at, latest_allowed
    return latest_allowed


_last_latest_allowed: list[tuple[datetime | None, tuple[int, int]]] = [(None, (0, 0))]


def _required(field: str) -> FieldViolation:
    return FieldViolation(field, "is required")


def _too_long(field: str, max_length: int) -> FieldViolation:
    return FieldViolation(field, f"must be at most {max_length} characters")


def backfill_violations(event: Event, earliest_seconds: int, days: int) -> list[FieldViolation]:
    """An event sent without an ingest key may claim at most `days` days before the server's
    clock (`earliest_seconds`, the Unix second that is), so that an anonymous client cannot
    rewrite the history of a site; a valid key allows back to LIMITS.earliest_timestamp.
    Checked after validate_event, which has given every event its timestamp."""
    if event.timestamp.seconds >= earliest_seconds:
        return []
    return [
        FieldViolation(
            "timestamp",
            f"must not be more than {days} days before the server's clock without an ingest "
            "key (KEYLESS_BACKFILL_DAYS)",
        )
    ]
