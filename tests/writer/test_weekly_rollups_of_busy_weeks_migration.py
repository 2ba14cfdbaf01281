"""Migration 0011 on a database 0010 rolled up: only the weeks with 1,000 views or more keep
their rollups; a quieter week's rows go, and a range reads it from its days."""

from __future__ import annotations

from datetime import date

import asyncpg

from core.migrator import migrate

QUIET, BUSY = date(2025, 11, 3), date(2025, 11, 10)
THRESHOLD = 1000  # the migration's, whatever core.week_rollups says now
# weekly_rollups as 0010 made them: (site_id, week, views), page views.
ROLLUPS_BEFORE_0011 = [
    ("site-1", QUIET, THRESHOLD - 1),
    ("site-1", BUSY, THRESHOLD),
    ("site-2", BUSY, 1),
]


async def migrated(pool: asyncpg.Pool) -> None:
    await migrate(pool, up_to=10)
    await pool.executemany(
        "INSERT INTO weekly_rollups VALUES ($1, 'page_view', $2, $3)", ROLLUPS_BEFORE_0011
    )
    await pool.executemany(
        "INSERT INTO weekly_path_views VALUES ($1, 'page_view', $2, '/a', $3)",
        ROLLUPS_BEFORE_0011,
    )
    await pool.executemany(
        "INSERT INTO weekly_user_bitmaps VALUES ($1, 'page_view', $2, 0, B'1'::bit(8192))",
        [(site, week) for site, week, _ in ROLLUPS_BEFORE_0011],
    )
    await migrate(pool)


async def test_only_the_busy_weeks_keep_their_rollups(pool: asyncpg.Pool) -> None:
    await migrated(pool)

    rollups = await pool.fetch("SELECT site_id, week, views FROM weekly_rollups ORDER BY 1, 2")
    assert [tuple(row) for row in rollups] == [("site-1", BUSY, THRESHOLD)]


async def test_the_quiet_weeks_path_views_and_users_go_with_their_rollups(
    pool: asyncpg.Pool,
) -> None:
    await migrated(pool)

    paths = await pool.fetch("SELECT site_id, week FROM weekly_path_views ORDER BY 1, 2")
    users = await pool.fetch("SELECT site_id, week FROM weekly_user_bitmaps ORDER BY 1, 2")
    assert [tuple(row) for row in paths] == [("site-1", BUSY)]
    assert [tuple(row) for row in users] == [("site-1", BUSY)]
