"""What the database holds of the events a client sent."""

from __future__ import annotations

from collections import Counter

import asyncpg


async def stored_ids(db: asyncpg.Connection) -> Counter[str]:
    """How many rows the events table holds for each event_id."""
    rows = await db.fetch("SELECT event_id, count(*) AS n FROM events GROUP BY event_id")
    return Counter({row["event_id"]: row["n"] for row in rows})


async def stored_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM events")
    return count


async def counted_views(db: asyncpg.Connection) -> int:
    """Events counted by the daily aggregates, which count each row the writer inserts."""
    views: int = await db.fetchval("SELECT coalesce(sum(views), 0) FROM daily_totals")
    return views
