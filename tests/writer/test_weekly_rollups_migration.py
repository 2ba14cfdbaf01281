"""Migration 0010 on a database the writer filled before it: the path views and user bitmaps of
the days already counted are rolled up in their weeks, once the weeks are over (all of them:
0011 then lets go of the quiet ones)."""

from __future__ import annotations

from datetime import date

import asyncpg

from core.migrator import migrate

# daily_path_views as 0009's writer kept them: (site_id, event_type, day, path, views).
DAYS_BEFORE_0010 = [
    ("site-1", "page_view", date(2025, 11, 9), "/a", 4),  # a Sunday
    ("site-1", "page_view", date(2025, 11, 10), "/a", 2),  # the Monday after
    ("site-1", "page_view", date(2025, 11, 16), "/a", 1),  # the Sunday after that
    ("site-1", "page_view", date(2025, 11, 12), "/b", 3),
    ("site-1", "signup", date(2025, 11, 12), "/b", 5),
    ("site-2", "page_view", date(2025, 11, 12), "/a", 6),
]
# daily_user_bitmaps as 0009's writer kept them: (site_id, day, users' numbers), page views.
USERS_BEFORE_0010 = [
    ("site-1", date(2025, 11, 10), (0, 1)),
    ("site-1", date(2025, 11, 12), (1, 2)),
    ("site-1", date(2025, 11, 17), (0,)),
]
WEEKS = "SELECT site_id, event_type, week, path, views FROM weekly_path_views ORDER BY 1, 2, 3, 4"
WEEKS_USERS = (
    "SELECT week, chunk, array(SELECT n FROM generate_series(0, 8191) AS n"
    " WHERE get_bit(bits, n) = 1) FROM weekly_user_bitmaps ORDER BY 1, 2"
)


async def migrated(pool: asyncpg.Pool) -> None:
    await migrate(pool, up_to=9)
    await pool.executemany(
        "INSERT INTO daily_path_views (site_id, event_type, day, path, views)"
        " VALUES ($1, $2, $3, $4, $5)",
        DAYS_BEFORE_0010,
    )
    await pool.executemany(
        "INSERT INTO daily_user_bitmaps (site_id, event_type, day, chunk, bits, added_users)"
        " SELECT $1, 'page_view', $2, 0, bitmap_of(n, 1), 0 FROM unnest($3::int[]) AS n",
        USERS_BEFORE_0010,
    )
    await migrate(pool, up_to=10)


async def test_the_days_counted_before_0010_are_added_up_in_their_weeks(
    pool: asyncpg.Pool,
) -> None:
    await migrated(pool)

    assert [tuple(row) for row in await pool.fetch(WEEKS)] == [
        ("site-1", "page_view", date(2025, 11, 3), "/a", 4),
        ("site-1", "page_view", date(2025, 11, 10), "/a", 3),
        ("site-1", "page_view", date(2025, 11, 10), "/b", 3),
        ("site-1", "signup", date(2025, 11, 10), "/b", 5),
        ("site-2", "page_view", date(2025, 11, 10), "/a", 6),
    ]


async def test_each_weeks_rollup_records_the_views_it_adds_up_to(pool: asyncpg.Pool) -> None:
    await migrated(pool)

    rollups = await pool.fetch(
        "SELECT site_id, event_type, week, views FROM weekly_rollups ORDER BY 1, 2, 3"
    )
    assert [tuple(row) for row in rollups] == [
        ("site-1", "page_view", date(2025, 11, 3), 4),
        ("site-1", "page_view", date(2025, 11, 10), 6),
        ("site-1", "signup", date(2025, 11, 10), 5),
        ("site-2", "page_view", date(2025, 11, 10), 6),
    ]


async def test_the_users_of_the_days_counted_before_0010_are_ORed_in_their_weeks(
    pool: asyncpg.Pool,
) -> None:
    await migrated(pool)

    assert [tuple(row) for row in await pool.fetch(WEEKS_USERS)] == [
        (date(2025, 11, 10), 0, [0, 1, 2]),
        (date(2025, 11, 17), 0, [0]),
    ]


async def test_a_week_not_over_is_left_to_the_upkeep(pool: asyncpg.Pool) -> None:
    await migrate(pool, up_to=9)
    await pool.execute(
        "INSERT INTO daily_path_views (site_id, event_type, day, path, views)"
        " VALUES ('site-1', 'page_view', current_date, '/a', 1)"
    )

    await migrate(pool, up_to=10)

    assert await pool.fetch(WEEKS) == []
