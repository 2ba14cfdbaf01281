"""The events a client sends, and what it says of those the server refuses."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from analytics_client._proto.event_pb2 import Event
from analytics_client.ids import new_event_id

# No valid event comes near this size (the server's limits keep one under about 40 KiB): an
# event over it is a mistake at the call site, refused there rather than sent to be refused.
MAX_EVENT_BYTES = 1024 * 1024


def new_event(
    site_id: str,
    event_type: str,
    path: str,
    *,
    user_id: str | None = None,
    timestamp: datetime | None = None,
    properties: Mapping[str, str] | None = None,
    referrer: str | None = None,
    event_id: str | None = None,
) -> tuple[Event, int]:
    """The event to send and its encoded size, with an event_id and a timestamp of its own
    when none is given: the time of the call, not of its delivery, which may come after an
    outage."""
    event = Event(
        event_id=event_id if event_id is not None else new_event_id(),
        site_id=site_id,
        event_type=event_type,
        path=path,
        user_id=user_id or "",
        referrer=referrer or "",
        properties=properties or {},
    )
    if timestamp is None:
        event.timestamp.FromNanoseconds(time.time_ns())
    elif timestamp.tzinfo is None:
        raise ValueError(
            "timestamp must be timezone-aware (a naive datetime could be any time zone's)"
        )
    else:
        event.timestamp.FromDatetime(timestamp)
    size = event.ByteSize()
    if size > MAX_EVENT_BYTES:
        raise ValueError(
            f"the event is {size} bytes encoded, over the {MAX_EVENT_BYTES} any valid event "
            "stays under"
        )
    return event, size


class Violation(NamedTuple):
    """One problem the server found with one field of an event."""

    field: str
    description: str


@dataclass(frozen=True)
class Rejection:
    """An event the server refused. It is not sent again: the same event would be refused
    again."""

    event: Event
    # The fields at fault, when the server named them.
    violations: tuple[Violation, ...]
    # One line saying why, for a log.
    message: str
