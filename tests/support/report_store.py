"""Storing a test's events as the writer stores them, and asking about them, for the report
tests: what the reports read, and nothing the tests do not say."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import asyncpg
from analytics.internal.v1.stream_pb2 import EventContext
from analytics.v1.event_pb2 import Event

from report_server.scope import Filter, Scope, parse_scope
from tests.support.report_oracle import StoredEvent
from writer.decoding import row_of
from writer.store import EventStore

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


async def store(pool: asyncpg.Pool, events: Sequence[StoredEvent]) -> None:
    """Store the events with the writer's own statement (so a resent one is stored once), with
    what the ingest server would have derived for a browser's event."""
    rows = []
    for stored in events:
        event = Event(
            event_id=stored.event_id,
            site_id=stored.site_id,
            event_type=stored.event_type,
            path=stored.path,
            user_id=stored.user_id or "",
            referrer=stored.referrer or "",
            properties=stored.properties,
        )
        event.timestamp.FromDatetime(stored.at)
        context = EventContext(
            visitor_id=stored.visitor_id,
            browser=stored.browser,
            os=stored.os,
            device=stored.device,
            country=stored.country,
            referrer_source=stored.referrer_source,
            referrer_host=stored.derived_referrer_host,
            **stored.utm,
        )
        rows.append(row_of(event, RECEIVED, context=context))
    await EventStore(pool).store(rows)


def scope(site: str, first: date, last: date, zone: str, *filters: Filter) -> Scope:
    return parse_scope(
        site,
        start_date=first.isoformat(),
        end_date=last.isoformat(),
        timezone=zone,
        filters=[(f.dimension, f.operator, list(f.values)) for f in filters],
    )
