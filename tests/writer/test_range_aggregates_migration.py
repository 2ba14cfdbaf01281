"""Migration 0002 on a database that 0001's writer has filled: the events stored before it are
counted in the aggregates it adds, and the writer goes on from there."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from analytics.v1.event_pb2 import Event

from core.migrator import migrate
from report_server.database import ReportDatabase
from report_server.stats import StatsReader
from tests.support.stats import site_stats, summary
from tests.support.waiting import eventually
from writer.decoding import row_of
from writer.store import EventStore

# (event_id, site_id, event_type, path, user_id, occurred_at), as stored before 0002.
EARLIER_EVENTS = [
    ("1", "site-1", "page_view", "/a", "u1", "2025-11-14T08:00:00Z"),
    ("2", "site-1", "page_view", "/a", "u2", "2025-11-14T09:00:00Z"),
    ("3", "site-1", "page_view", "/b", None, "2025-11-14T10:00:00Z"),
    ("4", "site-1", "page_view", "/a", "u1", "2025-11-15T08:00:00Z"),
    ("5", "site-1", "page_view", "/c", "u3", "2025-11-15T23:59:59Z"),
    ("6", "site-1", "signup", "/signup", "u4", "2025-11-15T12:00:00Z"),
    ("7", "site-2", "page_view", "/a", "u1", "2025-11-15T12:00:00Z"),
]
# The top paths of site-1's page views among them.
EARLIER_PAGE_PATHS = [("/a", 3), ("/b", 1), ("/c", 1)]

# What 0001's writer kept for those events, derived from them as it did.
AGGREGATES_OF_0001 = """
INSERT INTO daily_path_views (site_id, event_type, day, path, views)
SELECT site_id, event_type, (occurred_at AT TIME ZONE 'UTC')::date, path, count(*)
FROM events GROUP BY 1, 2, 3, 4;
INSERT INTO daily_users (site_id, event_type, day, user_id)
SELECT DISTINCT site_id, event_type, (occurred_at AT TIME ZONE 'UTC')::date, user_id
FROM events WHERE user_id IS NOT NULL;
INSERT INTO daily_totals (site_id, event_type, day, views, users)
SELECT site_id, event_type, (occurred_at AT TIME ZONE 'UTC')::date, count(*),
       count(DISTINCT user_id)
FROM events GROUP BY 1, 2, 3;
"""


WAITING_FOR_A_LOCK = "SELECT exists (SELECT FROM pg_locks WHERE NOT granted)"
# What 0001's writer did for one more event (event 8: site-1, /d, user u9, on the 15th).
ONE_MORE_EVENT_UNDER_0001 = """
INSERT INTO events (event_id, site_id, event_type, path, user_id, occurred_at, properties,
                    received_at)
VALUES ('8', 'site-1', 'page_view', '/d', 'u9', '2025-11-15T14:00:00Z', '{}',
        '2025-11-15T14:00:00Z');
INSERT INTO daily_path_views (site_id, event_type, day, path, views)
VALUES ('site-1', 'page_view', '2025-11-15', '/d', 1);
INSERT INTO daily_users (site_id, event_type, day, user_id)
VALUES ('site-1', 'page_view', '2025-11-15', 'u9');
UPDATE daily_totals SET views = views + 1, users = users + 1
WHERE (site_id, event_type, day) = ('site-1', 'page_view', '2025-11-15');
"""


async def fill_under_0001(pool: asyncpg.Pool) -> None:
    await migrate(pool, up_to=1)
    await pool.executemany(
        "INSERT INTO events (event_id, site_id, event_type, path, user_id, occurred_at,"
        " properties, received_at) VALUES ($1, $2, $3, $4, $5, $6, '{}', $6)",
        [(*event[:5], datetime.fromisoformat(event[5])) for event in EARLIER_EVENTS],
    )
    await pool.execute(AGGREGATES_OF_0001)


@pytest.fixture
async def migrated(pool: asyncpg.Pool) -> StatsReader:
    """A database filled under migration 0001, then migrated to the latest version."""
    await fill_under_0001(pool)
    await migrate(pool)
    return StatsReader(ReportDatabase(pool, acquire_timeout=10, statement_timeout=60))


async def test_a_range_counts_the_events_stored_before_the_migration(
    migrated: StatsReader,
) -> None:
    result = await site_stats(migrated, "site-1", start_date="2025-11-14", end_date="2025-11-15")

    assert result == summary(
        "site-1", 5, 3, *EARLIER_PAGE_PATHS, start_date="2025-11-14", end_date="2025-11-15"
    )


async def test_all_time_counts_the_events_stored_before_the_migration(
    migrated: StatsReader,
) -> None:
    signups = await site_stats(migrated, "site-1", event_type="signup")

    assert await site_stats(migrated, "site-1") == summary("site-1", 5, 3, *EARLIER_PAGE_PATHS)
    assert (signups.total_views, signups.unique_users) == (1, 1)


async def test_a_day_keeps_its_users(migrated: StatsReader) -> None:
    first = await site_stats(migrated, "site-1", date="2025-11-14")
    second = await site_stats(migrated, "site-1", date="2025-11-15")

    assert (first.total_views, first.unique_users) == (3, 2)
    assert (second.total_views, second.unique_users) == (2, 2)


async def test_users_stored_before_the_migration_are_not_counted_again_after_it(
    migrated: StatsReader, pool: asyncpg.Pool
) -> None:
    rows = []
    for event_id, user_id in (("8", "u2"), ("9", "u5")):
        event = Event(
            event_id=event_id, site_id="site-1", event_type="page_view", path="/a", user_id=user_id
        )
        event.timestamp.FromDatetime(datetime(2025, 11, 15, 13, tzinfo=UTC))
        rows.append(row_of(event, datetime.now(UTC)))

    await EventStore(pool).store(rows)

    day = await site_stats(migrated, "site-1", date="2025-11-15")
    both = await site_stats(migrated, "site-1", start_date="2025-11-14", end_date="2025-11-15")
    all_time = await site_stats(migrated, "site-1")
    assert (day.total_views, day.unique_users) == (4, 4)
    assert (both.total_views, both.unique_users) == (7, 4)
    assert (all_time.total_views, all_time.unique_users) == (7, 4)


async def test_the_per_day_user_rows_are_gone(migrated: StatsReader, pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("SELECT to_regclass('daily_users')") is None


async def test_what_an_earlier_writer_commits_while_the_migration_waits_is_counted(
    pool: asyncpg.Pool,
) -> None:
    # A writer of the version before, still running while another service migrates.
    await fill_under_0001(pool)
    async with pool.acquire() as earlier_writer:
        storing = earlier_writer.transaction()
        await storing.start()
        await earlier_writer.execute(ONE_MORE_EVENT_UNDER_0001)
        migrating = asyncio.create_task(migrate(pool))
        await eventually(lambda: pool.fetchval(WAITING_FOR_A_LOCK), True)
        await storing.commit()
    await migrating

    reader = StatsReader(ReportDatabase(pool, acquire_timeout=10, statement_timeout=60))
    assert await site_stats(reader, "site-1") == summary(
        "site-1", 6, 4, *EARLIER_PAGE_PATHS, ("/d", 1)
    )
