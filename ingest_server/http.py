"""The ingest service's HTTP door: `POST /event` and `POST /events`.

It decodes JSON into the `Event`s the gRPC door receives and calls the same Ingestor; it holds
no rule of its own. Field names are the seeds' (`site_id`, `event_type`, `path`, `user_id`,
`timestamp`, ...). Decoding is strict: unknown fields, duplicate keys, values of the wrong type,
lone surrogates and timestamps that are not RFC 3339 with an offset are all refused, with the
field named.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from analytics.v1.event_pb2 import Event

from core.errors import FieldViolation, InvalidArgument
from core.events import listed_property_violations, property_count_violations
from ingest_server.ingestor import Ingestor, Outcome
from transports.http_app import Reply, Request, Routes, json_body
from transports.http_json import (
    RepeatedKeys,
    is_short_text,
    not_text,
    repeated_key,
    rfc3339_instant,
    violations_to_json,
)

_TEXT_FIELDS = ("event_id", "site_id", "event_type", "path", "user_id", "referrer")
_KNOWN_FIELDS = frozenset((*_TEXT_FIELDS, "timestamp", "properties"))
_TIMESTAMP_PROBLEM = "must be an RFC 3339 date-time with an offset, like 2025-11-14T10:00:00Z"


def routes(ingestor: Ingestor, max_body_bytes: int) -> Routes:
    ingest = _IngestRoutes(ingestor, max_body_bytes)
    return {"/event": {"POST": ingest.post_event}, "/events": {"POST": ingest.post_events}}


class _IngestRoutes:
    def __init__(self, ingestor: Ingestor, max_body_bytes: int) -> None:
        self._ingestor = ingestor
        self._max_body_bytes = max_body_bytes

    async def post_event(self, request: Request) -> Reply:
        event = event_from_json(await json_body(request, self._max_body_bytes))
        event_id = await self._ingestor.ingest(event)
        return Reply(HTTPStatus.ACCEPTED, {"status": "accepted", "event_id": event_id})

    async def post_events(self, request: Request) -> Reply:
        items = events_from_json(await json_body(request, self._max_body_bytes))
        outcome = await self._ingestor.ingest_batch(items)
        return Reply(
            HTTPStatus.OK,
            {
                "accepted": outcome.accepted_count,
                "rejected": outcome.rejected_count,
                "results": [outcome_to_json(each) for each in outcome.outcomes()],
            },
        )


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
    if isinstance(value, RepeatedKeys):
        violations += [repeated_key(key, key, "body") for key in value.repeated]
    unknown = sorted(key for key in value if key not in _KNOWN_FIELDS)
    violations += [_unknown_field(key) for key in unknown]
    event = Event()
    for name in _TEXT_FIELDS:
        text = value.get(name)
        if text is None:
            continue
        if problem := not_text(text):
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
        "field_violations": violations_to_json(outcome.violations),
    }


def _fill_properties(event: Event, properties: object) -> list[FieldViolation]:
    if not isinstance(properties, dict):
        return [FieldViolation("properties", "must be an object of strings")]
    if too_many := property_count_violations(len(properties)):
        return too_many
    violations = []
    if isinstance(properties, RepeatedKeys):
        violations += [
            repeated_key(key, f"properties[{key}]", "properties") for key in properties.repeated
        ]
    for key, value in properties.items():
        if not_text(key):
            violations.append(FieldViolation("properties", "keys must be valid Unicode"))
        elif problem := not_text(value):
            field = f"properties[{key}]" if is_short_text(key) else "properties"
            violations.append(FieldViolation(field, problem))
        else:
            event.properties[key] = value
    return listed_property_violations(violations)


def _unknown_field(key: str) -> FieldViolation:
    if is_short_text(key):
        return FieldViolation(key, "is not a known field")
    return FieldViolation("body", "holds an unknown field")
