"""Migration 0003 on a database filled under 0002: event_ids become unique per site, and
nothing stored or counted before changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
from analytics.v1.event_pb2 import Event

from core.migrator import migrate
from writer.decoding import row_of
from writer.store import EventStore

RECEIVED = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)
AGGREGATES = "SELECT site_id, day, views, users FROM daily_totals ORDER BY 1, 2"


def event(event_id: str, site_id: str, user_id: str = "") -> Event:
    stored = Event(
        event_id=event_id, site_id=site_id, event_type="page_view", path="/", user_id=user_id
    )
    stored.timestamp.FromDatetime(datetime(2025, 11, 14, 10, tzinfo=UTC))
    return stored


# What the writer of 0002's time stored and counted for those events.
FILL_UNDER_0002 = """
INSERT INTO events (event_id, site_id, event_type, path, user_id, occurred_at, properties,
                    received_at)
VALUES ('1', 'shop-a', 'page_view', '/', 'u1', '2025-11-14T10:00:00Z', '{}',
        '2025-11-14T12:00:00Z'),
       ('2', 'shop-b', 'page_view', '/', NULL, '2025-11-14T10:00:00Z', '{}',
        '2025-11-14T12:00:00Z');
INSERT INTO daily_totals (site_id, event_type, day, views, users)
VALUES ('shop-a', 'page_view', '2025-11-14', 1, 1), ('shop-b', 'page_view', '2025-11-14', 1, 0);
"""


async def filled_under_0002(pool: asyncpg.Pool) -> EventStore:
    await migrate(pool, up_to=2)
    await pool.execute(FILL_UNDER_0002)
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
