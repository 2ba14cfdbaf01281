"""Rebuilding a site's aggregates from its stored events (writer/rebuild.py): the numbers are
those of a brute-force count of the events, whatever the aggregates held before, however often
it runs, and while the writer stores more of the site's events."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from analytics.v1.event_pb2 import Event

from core.migrator import migrate
from writer.decoding import Row, row_of
from writer.rebuild import (
    DAILY_AGGREGATES,
    LONGER_AGGREGATES,
    NOT_REBUILT,
    DayRebuilt,
    RawEventsMissing,
    UnknownSite,
    rebuild,
    site_days,
)
from writer.store import EventStore

SITE = "site-1"
OTHER = "site-2"
ZONE = "America/New_York"
START = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # the days around the start of DST there
RECEIVED = datetime(2025, 3, 12, tzinfo=UTC)
# Every aggregate column a report reads (the bitmaps' added_* columns say what their latest
# write added, a detail of the writer's statement).
AGGREGATES = {
    "daily_totals": "site_id, event_type, day, views, users, anonymous_visitors",
    "daily_path_views": "site_id, event_type, day, path, views",
    "daily_user_bitmaps": "site_id, event_type, day, chunk, bits",
    "daily_visitor_bitmaps": "site_id, event_type, day, chunk, bits",
    "all_time_path_views": "site_id, event_type, path, views",
    "all_time_user_bitmaps": "site_id, event_type, chunk, bits",
    "site_users": "site_id, user_id, user_no",
}


def events(count: int, seed: int, site_id: str = SITE) -> list[Row]:
    """Events over four days, of a few paths, types, users and anonymous visitors."""
    rnd = random.Random(seed)
    rows = []
    for n in range(count):
        event = Event(
            event_id=f"{seed}-{n}",
            site_id=site_id,
            event_type=rnd.choice(("page_view", "click")),
            path=rnd.choice(("/", "/a", "/b", "/c")),
            user_id=rnd.choice(("", "", "u1", "u2", "u3", "u4", "u5")),
        )
        event.timestamp.FromDatetime(START + timedelta(minutes=rnd.randrange(4 * 24 * 60)))
        row = row_of(event, RECEIVED)
        rows.append(row if row.user_id else row._replace(visitor_id=rnd.randrange(1, 4)))
    return rows


def counted(rows: Sequence[Row]) -> dict[str, set[tuple[object, ...]]]:
    """The site's daily totals, daily and all-time path views, and all-time users, counted
    by brute force, each event on its day in the site's zone."""
    views: dict[tuple[object, ...], int] = defaultdict(int)
    users: dict[tuple[object, ...], set[str]] = defaultdict(set)
    anonymous: dict[tuple[object, ...], set[int]] = defaultdict(set)
    paths: dict[tuple[object, ...], int] = defaultdict(int)
    all_time_paths: dict[tuple[object, ...], int] = defaultdict(int)
    all_time_users: dict[tuple[object, ...], set[str]] = defaultdict(set)
    for row in rows:
        day = row.occurred_at.astimezone(ZoneInfo(ZONE)).date()
        key = (row.site_id, row.event_type, day)
        views[key] += 1
        if row.user_id:
            users[key].add(row.user_id)
            all_time_users[(row.site_id, row.event_type)].add(row.user_id)
        elif row.visitor_id:
            anonymous[key].add(row.visitor_id)
        paths[(*key, row.path)] += 1
        all_time_paths[(row.site_id, row.event_type, row.path)] += 1
    return {
        "daily_totals": {
            (*key, count, len(users[key]), len(anonymous[key])) for key, count in views.items()
        },
        "daily_path_views": {(*key, count) for key, count in paths.items()},
        "all_time_path_views": {(*key, count) for key, count in all_time_paths.items()},
        "all_time_users": {(*key, len(who)) for key, who in all_time_users.items()},
    }


async def counts_of(pool: asyncpg.Pool, site_id: str = SITE) -> dict[str, set[tuple[object, ...]]]:
    """What the aggregates say, in the shape of `counted`."""
    queries = {
        "daily_totals": "SELECT site_id, event_type, day, views, users, anonymous_visitors "
        "FROM daily_totals WHERE site_id = $1",
        "daily_path_views": "SELECT site_id, event_type, day, path, views FROM daily_path_views "
        "WHERE site_id = $1",
        "all_time_path_views": "SELECT site_id, event_type, path, views FROM all_time_path_views "
        "WHERE site_id = $1",
        "all_time_users": "SELECT site_id, event_type, sum(bit_count(bits))::int "
        "FROM all_time_user_bitmaps WHERE site_id = $1 GROUP BY 1, 2",
    }
    found = {}
    for name, query in queries.items():
        found[name] = {tuple(row) for row in await pool.fetch(query, site_id)}
    return found


async def aggregates(pool: asyncpg.Pool) -> dict[str, list[tuple[object, ...]]]:
    """Every aggregate row of every site, as reports read them."""
    return {
        table: [tuple(r) for r in await pool.fetch(f"SELECT {cols} FROM {table} ORDER BY {cols}")]
        for table, cols in AGGREGATES.items()
    }


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    await migrate(pool)
    await pool.execute(
        "INSERT INTO sites (site_id, name, time_zone) VALUES ($1, $1, $2)", SITE, ZONE
    )
    await pool.execute(
        "INSERT INTO sites (site_id, name, time_zone) VALUES ($1, $1, $2)", OTHER, ZONE
    )
    return EventStore(pool)


async def rebuild_all(
    pool: asyncpg.Pool, site_id: str = SITE, *, min_week_views: int = 1
) -> list[DayRebuilt]:
    """Every day of the site rebuilt; its weeks rolled up however few their views, unless
    asked otherwise."""
    days = await site_days(pool, site_id)
    assert days is not None
    heard: list[DayRebuilt] = []
    await rebuild(pool, site_id, *days, progress=heard.append, min_week_views=min_week_views)
    return heard


async def test_a_rebuild_restores_damaged_and_deleted_aggregates(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store(events(300, seed=1) + events(100, seed=2, site_id=OTHER))
    kept = await aggregates(pool)
    await pool.execute("DELETE FROM daily_totals WHERE day = '2025-03-08'")
    await pool.execute("UPDATE daily_path_views SET views = views * 2 WHERE path = '/a'")
    await pool.execute("DELETE FROM daily_user_bitmaps WHERE event_type = 'click'")
    await pool.execute("UPDATE daily_visitor_bitmaps SET bits = ~bits")
    await pool.execute("DELETE FROM all_time_path_views WHERE path = '/b'")
    await pool.execute("UPDATE all_time_user_bitmaps SET bits = ~bits")
    await pool.execute(
        "INSERT INTO daily_totals VALUES ($1, 'signup', '2025-03-09', 5, 5, 5)", SITE
    )  # no signups stored: the rebuild deletes it

    await rebuild_all(pool, SITE)
    await rebuild_all(pool, OTHER)

    assert await aggregates(pool) == kept
    assert await counts_of(pool) == counted(events(300, seed=1))


async def test_a_rebuild_rolls_up_the_weeks_of_its_days_again(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    rows = events(300, seed=1)
    await store.store(rows)
    # Out of date: the rebuild makes them again.
    await pool.execute(
        "INSERT INTO weekly_path_views VALUES ($1, 'page_view', '2025-03-03', '/c', 99)", SITE
    )
    await pool.execute(
        "INSERT INTO weekly_user_bitmaps VALUES ($1, 'page_view', '2025-03-03', 0, ~0::bit(8192))",
        SITE,
    )

    await rebuild_all(pool)

    weeks: dict[tuple[object, ...], int] = defaultdict(int)
    users: dict[tuple[object, ...], set[str]] = defaultdict(set)
    for row in rows:
        day = row.occurred_at.astimezone(ZoneInfo(ZONE)).date()
        week = (row.event_type, day - timedelta(days=day.weekday()))
        weeks[(*week, row.path)] += 1
        if row.user_id:
            users[week].add(row.user_id)
    found = await pool.fetch(
        "SELECT event_type, week, path, views FROM weekly_path_views WHERE site_id = $1", SITE
    )
    found_users = await pool.fetch(
        "SELECT event_type, week, sum(bit_count(bits))::int FROM weekly_user_bitmaps"
        " WHERE site_id = $1 GROUP BY 1, 2",
        SITE,
    )
    assert {tuple(row) for row in found} == {(*key, views) for key, views in weeks.items()}
    assert {tuple(row) for row in found_users} == {(*key, len(who)) for key, who in users.items()}


async def test_a_rebuild_rolls_up_only_the_weeks_with_enough_views(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    rows = events(300, seed=1)
    await store.store(rows)
    views: dict[tuple[object, ...], int] = defaultdict(int)
    for row in rows:
        day = row.occurred_at.astimezone(ZoneInfo(ZONE)).date()
        views[(row.event_type, day - timedelta(days=day.weekday()))] += 1
    busiest = max(views.values())

    await rebuild_all(pool, min_week_views=busiest)

    found = await pool.fetch(
        "SELECT event_type, week, views FROM weekly_rollups WHERE site_id = $1 ORDER BY 1, 2", SITE
    )
    weeks = await pool.fetch(
        "SELECT DISTINCT event_type, week FROM weekly_path_views WHERE site_id = $1 ORDER BY 1, 2",
        SITE,
    )
    busy = sorted(key for key, n in views.items() if n == busiest)
    assert [tuple(row) for row in found] == [(*key, busiest) for key in busy]
    assert [tuple(row) for row in weeks] == busy


async def test_a_rebuild_reports_each_day_of_the_site_in_its_zone(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store(events(300, seed=1))

    heard = await rebuild_all(pool)

    assert [(d.day, d.done, d.days) for d in heard] == [
        (date(2025, 3, 7), 1, 5),
        (date(2025, 3, 8), 2, 5),
        (date(2025, 3, 9), 3, 5),
        (date(2025, 3, 10), 4, 5),
        (date(2025, 3, 11), 5, 5),
    ]
    assert heard[-1].total_events == sum(d.events for d in heard) == 300


async def test_rebuilding_twice_changes_nothing(store: EventStore, pool: asyncpg.Pool) -> None:
    await store.store(events(300, seed=1))
    kept = await aggregates(pool)

    await rebuild_all(pool)
    await rebuild_all(pool)

    assert await aggregates(pool) == kept


async def test_a_rebuild_of_some_days_leaves_the_others_and_all_time_right(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store(events(300, seed=1))
    kept = await aggregates(pool)
    await pool.execute("UPDATE daily_path_views SET views = 1000 WHERE day = '2025-03-10'")
    await pool.execute("UPDATE all_time_path_views SET views = 0")

    # The all-time views are made again from the days, the tenth rebuilt.
    await rebuild(pool, SITE, date(2025, 3, 10), date(2025, 3, 10))

    assert await aggregates(pool) == kept


async def test_a_rebuild_while_the_writer_stores_the_site_counts_every_event_once(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    rows = events(2000, seed=3)
    await store.store(rows[:500])
    batches = [rows[n : n + 100] for n in range(500, len(rows), 100)]

    async def writing() -> None:
        for batch in batches:
            await store.store(batch)

    async def rebuilding() -> None:
        for _ in range(3):
            await rebuild_all(pool)

    await asyncio.gather(writing(), rebuilding())

    assert await counts_of(pool) == counted(rows)


async def test_the_command_rebuilds_a_site_day_by_day(
    store: EventStore, pool: asyncpg.Pool, database_url: str
) -> None:
    await store.store(events(300, seed=1))
    kept = await aggregates(pool)
    await pool.execute("DELETE FROM daily_totals")

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "writer.replay_cli", "rebuild", SITE, "--from", "2025-03-08"],
        env={"DATABASE_URL": database_url, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )

    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [
        "2025-03-08",
        "2025-03-09",
        "2025-03-10",
        "2025-03-11",
    ]
    assert lines[-1].startswith(f"rebuilt {SITE}: 4 days, ")
    first_day = [row for row in kept["daily_totals"] if row[2] == date(2025, 3, 7)]
    assert await aggregates(pool) == kept | {
        "daily_totals": [row for row in kept["daily_totals"] if row not in first_day]
    }


async def test_days_before_the_first_stored_event_are_refused_and_kept(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # As after a retention dropped the raw events of the first days.
    await store.store(events(300, seed=1))
    await pool.execute(
        "DELETE FROM events WHERE occurred_at < $1", datetime(2025, 3, 9, 5, tzinfo=UTC)
    )
    kept = await aggregates(pool)

    with pytest.raises(RawEventsMissing) as refused:
        await rebuild(pool, SITE, date(2025, 3, 8), date(2025, 3, 11))

    assert refused.value.first_stored == date(2025, 3, 9)
    assert await aggregates(pool) == kept


async def test_a_site_not_registered_is_refused(store: EventStore, pool: asyncpg.Pool) -> None:
    with pytest.raises(UnknownSite):
        await rebuild(pool, "nobody", date(2025, 3, 7), date(2025, 3, 7))


async def test_every_table_a_site_fills_is_rebuilt_or_said_not_to_be(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # A table added with a site_id column fails this until writer/rebuild.py names it.
    tables = await pool.fetch(
        """
        SELECT c.relname FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'site_id'
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        """
    )

    assert {row["relname"] for row in tables} == {
        *DAILY_AGGREGATES,
        *LONGER_AGGREGATES,
        *NOT_REBUILT,
    }
