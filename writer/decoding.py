"""From stream messages to rows for the events table.

The ingest servers validate every event before publishing, so this checks only what the writer
itself relies on: the message decodes (else the whole message is poison), and each event has
the fields that make it storable exactly once (event_id, site_id, event_type, path, timestamp;
else that event alone is unstorable, and the others of its message are stored). Anything else
a foreign or corrupt message gets wrong is left to PostgreSQL to refuse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from analytics.internal.v1.stream_pb2 import EventContext, FilteredTraffic
from analytics.v1.event_pb2 import Event

from core.stream import UndecodableMessage, decode_filtered, decode_message

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Poison(Exception):
    """A message that can never be read, with the reason why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnstorableEvent(Exception):
    """An event of a message that can never be stored, with the reason why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Row(NamedTuple):
    """One row of the events table, in the column order of writer.queries.STORE_EVENTS."""

    event_id: str
    site_id: str
    event_type: str
    path: str
    user_id: str | None
    occurred_at: datetime
    referrer: str | None
    properties: str  # JSON
    received_at: datetime
    # What the ingest server derived from a browser's request (analytics.internal.v1.
    # EventContext); None where it derived nothing.
    visitor_id: int | None = None
    browser: str | None = None
    os: str | None = None
    device: str | None = None
    referrer_host: str | None = None
    referrer_source: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class MessageContents:
    """What the writer makes of one message: a row for each storable event, and the reason
    each other event cannot be stored, by the event's position in the message."""

    events: Sequence[Event]
    received_at: datetime
    contexts: Sequence[EventContext]  # parallel to events, or empty
    # The id of the request that brought each event, parallel to `events` ("" if untold).
    request_ids: Sequence[str]
    rows: list[Row]
    positions: list[int]  # the position in the message of each row's event
    unstorable: dict[int, str]
    # For a FilteredTraffic message (which holds no events): its counts.
    filtered: FilteredTraffic | None = None


def contents_of(data: bytes) -> MessageContents:
    """The rows of one message's events; Poison if the message cannot be read."""
    try:
        batch = decode_message(data)
    except UndecodableMessage as error:
        raise Poison(error.reason) from None
    received_at = _datetime(batch.received_at.seconds, batch.received_at.nanos)
    if received_at is None:
        raise Poison("received_at is out of range")
    contexts = batch.contexts
    contents = MessageContents(batch.events, received_at, contexts, batch.request_ids, [], [], {})
    for position, event in enumerate(batch.events):
        try:
            context = contexts[position] if contexts else None
            contents.rows.append(row_of(event, received_at, position, context))
        except UnstorableEvent as error:
            contents.unstorable[position] = error.reason
        else:
            contents.positions.append(position)
    return contents


def filtered_contents_of(data: bytes) -> MessageContents:
    """A FilteredTraffic message's counts; Poison if it cannot be read or a day is not a
    date."""
    try:
        window = decode_filtered(data)
    except UndecodableMessage as error:
        raise Poison(error.reason) from None
    for count in window.counts:
        try:
            date.fromisoformat(count.day)
        except ValueError:
            raise Poison(f"day {count.day[:32]!r} is not YYYY-MM-DD") from None
    return MessageContents((), _EPOCH, (), (), [], [], {}, window)


# The context fields of a row whose event carries none (an event not from a browser).
_NOTHING_DERIVED: tuple[None, ...] = (None,) * 12


def row_of(
    event: Event, received_at: datetime, index: int = 0, context: EventContext | None = None
) -> Row:
    # Each field is read once and the row made in one call: this runs for every event stored,
    # and a row made and then _replace()d with the context cost the writer an eighth of its CPU
    # (docs/benchmarks.md, "Whole stack").
    event_id, site_id, event_type, path = (
        event.event_id,
        event.site_id,
        event.event_type,
        event.path,
    )
    if not (event_id and site_id and event_type and path) or not event.HasField("timestamp"):
        raise UnstorableEvent(f"event {index} lacks {', '.join(_missing(event))}")
    timestamp = event.timestamp
    occurred_at = _datetime(timestamp.seconds, timestamp.nanos)
    if occurred_at is None:
        raise UnstorableEvent(f"event {index} timestamp is out of range")
    properties = event.properties
    derived = (
        _NOTHING_DERIVED
        if context is None
        else (
            context.visitor_id or None,
            context.browser or None,
            context.os or None,
            context.device or None,
            context.referrer_host or None,
            context.referrer_source or None,
            context.utm_source or None,
            context.utm_medium or None,
            context.utm_campaign or None,
            context.utm_term or None,
            context.utm_content or None,
            context.country or None,
        )
    )
    return Row(
        event_id,
        site_id,
        event_type,
        path,
        event.user_id or None,
        occurred_at,
        event.referrer or None,
        json.dumps(dict(properties), ensure_ascii=False, sort_keys=True) if properties else "{}",
        received_at,
        *derived,
    )


def _missing(event: Event) -> list[str]:
    missing = [
        name for name in ("event_id", "site_id", "event_type", "path") if not getattr(event, name)
    ]
    if not event.HasField("timestamp"):
        missing.append("timestamp")
    return missing


def _datetime(seconds: int, nanos: int) -> datetime | None:
    """The UTC time, or None when Python's datetime cannot hold it. (Adding to the epoch
    costs a third of datetime.fromtimestamp, which was a sixth of the writer's CPU.)"""
    try:
        return _EPOCH + timedelta(0, seconds, nanos // 1000)
    except (ValueError, OverflowError):
        return None
