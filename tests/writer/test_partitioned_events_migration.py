"""Migration 0009 on a database filled under 0007: events move into monthly partitions, their
ids into event_ids, and nothing stored or counted before changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
from analytics.v1.event_pb2 import Event

from core.migrator import migrate
from writer.decoding import row_of
from writer.store import EventStore

RECEIVED = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)
AGGREGATES = "SELECT site_id, day, views, users FROM daily_totals ORDER BY 1, 2"
STORED = """
SELECT tableoid::regclass::text, site_id, event_id, path, occurred_at FROM events ORDER BY 2, 3
"""

# What the writer of 0007's time stored and counted: two sites, an event in October and two
# in November (one at the month's very first instant, UTC).
FILL_UNDER_0007 = """
INSERT INTO events (event_id, site_id, event_type, path, user_id, occurred_at, properties,
                    received_at, stored_at)
VALUES ('1', 'shop-a', 'page_view', '/a', 'u1', '2025-10-31T23:59:59Z', '{}',
        '2025-11-01T00:00:01Z', '2025-11-01T00:00:02Z'),
       ('2', 'shop-a', 'page_view', '/b', NULL, '2025-11-01T00:00:00Z', '{}',
        '2025-11-01T00:00:01Z', '2025-11-01T00:00:02Z'),
       ('1', 'shop-b', 'page_view', '/a', NULL, '2025-11-14T10:00:00Z', '{}',
        '2025-11-14T12:00:00Z', '2025-11-14T12:00:01Z');
INSERT INTO daily_totals (site_id, event_type, day, views, users)
VALUES ('shop-a', 'page_view', '2025-10-31', 1, 1), ('shop-a', 'page_view', '2025-11-01', 1, 0),
       ('shop-b', 'page_view', '2025-11-14', 1, 0);
"""


async def filled_under_0007(pool: asyncpg.Pool) -> None:
    await migrate(pool, up_to=7)
    await pool.execute(FILL_UNDER_0007)


async def test_every_event_moves_to_its_months_partition_and_no_aggregate_changes(
    pool: asyncpg.Pool,
) -> None:
    await filled_under_0007(pool)
    before = [tuple(row) for row in await pool.fetch(AGGREGATES)]

    await migrate(pool)

    assert [tuple(row) for row in await pool.fetch(STORED)] == [
        ("events_2025_10", "shop-a", "1", "/a", datetime(2025, 10, 31, 23, 59, 59, tzinfo=UTC)),
        ("events_2025_11", "shop-a", "2", "/b", datetime(2025, 11, 1, tzinfo=UTC)),
        ("events_2025_11", "shop-b", "1", "/a", datetime(2025, 11, 14, 10, tzinfo=UTC)),
    ]
    ids = await pool.fetch("SELECT site_id, event_id, stored_at FROM event_ids ORDER BY 1, 2")
    assert [tuple(row) for row in ids] == [
        ("shop-a", "1", datetime(2025, 11, 1, 0, 0, 2, tzinfo=UTC)),
        ("shop-a", "2", datetime(2025, 11, 1, 0, 0, 2, tzinfo=UTC)),
        ("shop-b", "1", datetime(2025, 11, 14, 12, 0, 1, tzinfo=UTC)),
    ]
    assert (
        [tuple(row) for row in await pool.fetch(AGGREGATES)]
        == before
        == [
            ("shop-a", date(2025, 10, 31), 1, 1),
            ("shop-a", date(2025, 11, 1), 1, 0),
            ("shop-b", date(2025, 11, 14), 1, 0),
        ]
    )


async def test_after_it_a_resend_of_an_event_stored_before_counts_once_whatever_its_time(
    pool: asyncpg.Pool,
) -> None:
    await filled_under_0007(pool)
    await migrate(pool)
    resend = Event(event_id="1", site_id="shop-a", event_type="page_view", path="/a")
    resend.timestamp.FromDatetime(datetime(2025, 11, 14, 9, tzinfo=UTC))  # another month

    stored = await EventStore(pool).store([row_of(resend, RECEIVED)])

    assert stored == 0
    assert [tuple(row) for row in await pool.fetch(AGGREGATES)] == [
        ("shop-a", date(2025, 10, 31), 1, 1),
        ("shop-a", date(2025, 11, 1), 1, 0),
        ("shop-b", date(2025, 11, 14), 1, 0),
    ]
