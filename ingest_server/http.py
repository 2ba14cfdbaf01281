"""The ingest service's HTTP door: `POST /event` and `POST /events`, and `GET /tracker.js`.

It decodes JSON (sent as `application/json`, or as `text/plain` as browsers' beacons do) into
the `Event`s the gRPC door receives and calls the same Ingestor; it holds no rule of its own.
Field names are the seeds' (`site_id`, `event_type`, `path`, `user_id`, `timestamp`, ...).
Decoding is strict: unknown fields, duplicate keys, values of the wrong type, lone surrogates
and timestamps that are not RFC 3339 with an offset are all refused, with the field named.

A request with an `Origin` header comes from a page: it is handed to the Ingestor with what it
says of its sender (ingest_server.browsers). An event dropped is answered like an accepted one
(202), so that a tracker does not send it again, with `X-Analytics-Dropped` naming why.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from analytics.v1.event_pb2 import Event

from core.access import IngestAccess
from core.errors import FieldViolation, InvalidArgument
from core.events import listed_property_violations, property_count_violations
from core.settings import Network
from ingest_server.access import IngestGate
from ingest_server.browsers import BrowserRequest
from ingest_server.client_ip import TrustedProxies, client_ip
from ingest_server.ingestor import Dropped, Ingestor, Outcome
from ingest_server.tracker import Tracker
from transports.credentials import http_secret
from transports.http_app import Headers, Reply, Request, Routes, json_body
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


DROPPED_HEADER = b"x-analytics-dropped"


def routes(
    ingestor: Ingestor,
    gate: IngestGate,
    max_body_bytes: int,
    trusted_proxies: tuple[Network, ...] = (),
) -> Routes:
    ingest = _IngestRoutes(ingestor, gate, max_body_bytes, trusted_proxies)
    return {
        "/event": {"POST": ingest.post_event},
        "/events": {"POST": ingest.post_events},
        "/tracker.js": {"GET": Tracker().get},
    }


class _IngestRoutes:
    def __init__(
        self,
        ingestor: Ingestor,
        gate: IngestGate,
        max_body_bytes: int,
        trusted_proxies: tuple[Network, ...],
    ) -> None:
        self._ingestor = ingestor
        self._gate = gate
        self._max_body_bytes = max_body_bytes
        self._trusted_proxies = TrustedProxies.of(trusted_proxies)

    async def post_event(self, request: Request) -> Reply:
        access = self._access(request)
        event = event_from_json(await json_body(request, self._max_body_bytes, text_plain=True))
        try:
            event_id = await self._ingestor.ingest(event, self._browser(request), access)
        except Dropped as dropped:
            return Reply(
                HTTPStatus.ACCEPTED,
                {"status": "dropped", "reason": dropped.reason},
                _dropped_headers([dropped.reason]),
            )
        return Reply(HTTPStatus.ACCEPTED, {"status": "accepted", "event_id": event_id})

    async def post_events(self, request: Request) -> Reply:
        access = self._access(request)
        items = events_from_json(await json_body(request, self._max_body_bytes, text_plain=True))
        outcome = await self._ingestor.ingest_batch(
            items, browser=self._browser(request), access=access
        )
        body = {
            "accepted": outcome.accepted_count,
            "rejected": outcome.rejected_count,
            "results": [outcome_to_json(each) for each in outcome.outcomes()],
        }
        if not outcome.drops:
            return Reply(HTTPStatus.OK, body)
        body["dropped"] = outcome.dropped_count
        return Reply(HTTPStatus.OK, body, _dropped_headers(outcome.drops.values()))

    def _access(self, request: Request) -> IngestAccess:
        """What the request may send: a credential presented is checked before its body is
        read."""
        headers = request.headers
        return self._gate.access(http_secret(headers), browser=b"origin" in headers)

    def _browser(self, request: Request) -> BrowserRequest | None:
        """What a page's request says of its sender; None for a request of no page."""
        headers = request.headers
        origin = headers.get(b"origin")
        if origin is None:
            return None
        return BrowserRequest(
            origin.decode("latin-1"),
            headers.get(b"user-agent", b"").decode("latin-1"),
            client_ip(request.client, headers.get(b"x-forwarded-for"), self._trusted_proxies),
        )


def _dropped_headers(reasons: Iterable[str]) -> Headers:
    """`X-Analytics-Dropped` with the reasons, each once, readable by the page too."""
    named = ",".join(sorted(set(reasons))).encode()
    return ((DROPPED_HEADER, named), (b"access-control-expose-headers", b"X-Analytics-Dropped"))


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
    if outcome.dropped:
        return {"index": outcome.index, "status": "dropped", "reason": outcome.dropped}
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
