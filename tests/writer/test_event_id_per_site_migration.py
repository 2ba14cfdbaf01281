"""Migration 0003 on a database filled under 0002: event_ids become unique per site, and
nothing stored or counted before changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
from analytics.v1.event_pb2 import Event

from core.migrator import migrate
from writer.decoding import row_of
from writer.queries import STORE_EVENTS
from writer.store import EventStore

RECEIVED = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)
AGGREGATES = "SELECT site_id, day, views, users FROM daily_totals ORDER BY 1, 2"


def event(event_id: str, site_id: str, user_id: str = "") -> Event:
    stored = Event(
        event_id=event_id, site_id=site_id, event_type="page_view", path="/", user_id=user_id
    )
    stored.timestamp.FromDatetime(datetime(2025, 11, 14, 10, tzinfo=UTC))
    return stored


# The statement of the writer of 0002's time, whose conflict target was event_id alone.
STORE_EVENTS_UNDER_0002 = STORE_EVENTS.replace(
    "ON CONFLICT (site_id, event_id)", "ON CONFLICT (event_id)"
)


async def filled_under_0002(pool: asyncpg.Pool) -> EventStore:
    await migrate(pool, up_to=2)
    rows = [row_of(event("1", "shop-a", "u1"), RECEIVED), row_of(event("2", "shop-b"), RECEIVED)]
    await pool.fetchval(STORE_EVENTS_UNDER_0002, *map(list, zip(*rows, strict=True)))
    return EventStore(pool)


async def test_every_event_and_aggregate_stored_before_it_is_kept(pool: asyncpg.Pool) -> None:
    await filled_under_0002(pool)
    before = [tuple(row) for row in await pool.fetch(AGGREGATES)]

    await migrate(pool)

    assert [tuple(row) for row in await pool.fetch("SELECT site_id, event_id FROM events")] == [
        ("shop-a", "1"),
        ("shop-b", "2"),
    ]
    assert (
        [tuple(row) for row in await pool.fetch(AGGREGATES)]
        == before
        == [
            ("shop-a", date(2025, 11, 14), 1, 1),
            ("shop-b", date(2025, 11, 14), 1, 0),
        ]
    )


async def test_after_it_another_site_may_use_a_stored_event_id(pool: asyncpg.Pool) -> None:
    store = await filled_under_0002(pool)
    await migrate(pool)

    stored = await store.store([row_of(event("1", "shop-b"), RECEIVED)])

    assert stored == 1
    assert [tuple(row) for row in await pool.fetch(AGGREGATES)] == [
        ("shop-a", date(2025, 11, 14), 1, 1),
        ("shop-b", date(2025, 11, 14), 2, 0),
    ]
