"""Rebuilding a site's aggregates for a range of its days from the raw events it has stored:
after a bug in the counting, a restore, or rows lost or damaged by hand.

Each day is rebuilt in a transaction of its own: its rows of every daily aggregate are deleted
and its stored events counted again by the writer's own statement (writer.queries.REBUILD_DAY
shares its text with STORE_EVENTS), so the numbers are those the writer would have kept. The
site's row is locked FOR UPDATE meanwhile; the writer reads it FOR SHARE before counting any
of the site's events, so a rebuild during ingestion waits for the site's batches in flight and
holds back the next ones for one day's work: no event is counted twice or missed, and the
other sites' batches go on. At the end the rollups of the range's busy weeks and the all-time
aggregates are made again from the daily ones. Running it again changes nothing.

Users keep their numbers (site_users): the bitmaps of days outside the range refer to them.
A user of a rebuilt day who has none gets the site's next one, as the writer would give it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from core.schema import STORAGE_UPKEEP_LOCK_KEY
from core.week_rollups import MIN_WEEK_VIEWS, ROLL_UP_SITE_WEEKS
from writer.queries import (
    DELETE_DAY,
    DELETE_WEEKS,
    LOCK_SITE_FOR_REBUILD,
    LOCK_STORAGE_UPKEEP,
    REBUILD_ALL_TIME,
    REBUILD_DAY,
    SITE_EVENT_SPAN,
    UNCOUNT_DAY_PATH_VIEWS,
)

# The aggregates a day's events are counted into, made again day by day.
DAILY_AGGREGATES = (
    "daily_totals",
    "daily_path_views",
    "daily_user_bitmaps",
    "daily_visitor_bitmaps",
)
# The aggregates of longer periods, made again from the daily ones: the range's weeks (rolled up
# again), and all time.
LONGER_AGGREGATES = (
    "weekly_rollups",
    "weekly_path_views",
    "weekly_user_bitmaps",
    "all_time_path_views",
    "all_time_user_bitmaps",
)
# The site's other tables that grow with its traffic, and why a rebuild leaves them be.
NOT_REBUILT = {
    "events": "the raw events a rebuild counts",
    "event_ids": "the ids of the events stored, which make storing idempotent",
    "sites": "the registry: names, zones, origins",
    "site_users": "user numbers: the bitmaps of days outside the range refer to them",
    "site_user_counters": "the next user number of each site",
    "filtered_traffic": "counts of events the ingest servers dropped: none of them is stored",
}


class UnknownSite(Exception):
    """The site is not registered: it has no events and no aggregates."""


class RawEventsMissing(Exception):
    """Days asked for lie before the site's first stored event: their raw events are gone (a
    retention dropped them) or never were, and a rebuild would wipe the aggregates that are
    all that is left of them."""

    def __init__(self, site_id: str, first_stored: date | None) -> None:
        super().__init__(site_id, first_stored)
        self.site_id = site_id
        self.first_stored = first_stored


@dataclass(frozen=True)
class DayRebuilt:
    day: date
    events: int
    # Days done so far and in all, events counted so far, seconds since the start.
    done: int
    days: int
    total_events: int
    seconds: float


@dataclass(frozen=True)
class RebuildResult:
    days: int
    events: int
    seconds: float


async def site_days(pool: asyncpg.Pool, site_id: str) -> tuple[date, date] | None:
    """The first and last days of the site's stored events, in its time zone; None if it
    has none. Raises UnknownSite."""
    async with pool.acquire() as connection:
        zone = await connection.fetchval("SELECT time_zone FROM sites WHERE site_id = $1", site_id)
        if zone is None:
            raise UnknownSite(site_id)
        span = await connection.fetchrow(SITE_EVENT_SPAN, site_id)
    assert span is not None
    first, last = span
    if first is None:
        return None
    return _local_day(first, zone), _local_day(last, zone)


async def rebuild(
    pool: asyncpg.Pool,
    site_id: str,
    first: date,
    last: date,
    progress: Callable[[DayRebuilt], None] = lambda _: None,
    *,
    min_week_views: int = MIN_WEEK_VIEWS,
) -> RebuildResult:
    """Rebuild the site's aggregates for the days first..last (in its time zone), then the
    rollups of their weeks with `min_week_views` views or more (core.week_rollups) and its
    all-time aggregates; `progress` hears of every day. Raises UnknownSite, and
    RawEventsMissing, changing nothing, if `first` is before the day of the site's first stored
    event."""
    span = await site_days(pool, site_id)
    if span is None or first < span[0]:
        raise RawEventsMissing(site_id, span[0] if span else None)
    started = time.perf_counter()
    days = (last - first).days + 1
    total = 0
    for index in range(days):
        day = first + timedelta(days=index)
        async with pool.acquire() as connection, connection.transaction():
            zone = await _lock_site(connection, site_id)
            await connection.execute(UNCOUNT_DAY_PATH_VIEWS, site_id, day)
            for table in DAILY_AGGREGATES:
                await connection.execute(DELETE_DAY.format(table=table), site_id, day)
            events: int = await connection.fetchval(REBUILD_DAY, site_id, day, zone)
        total += events
        progress(DayRebuilt(day, events, index + 1, days, total, time.perf_counter() - started))
    async with pool.acquire() as connection, connection.transaction():
        # The storage upkeep rolls weeks up too; its lock first, as a change of zone takes it.
        await connection.execute(LOCK_STORAGE_UPKEEP, STORAGE_UPKEEP_LOCK_KEY)
        await _lock_site(connection, site_id)
        for statement in DELETE_WEEKS:
            await connection.execute(statement, site_id, first, last)
        await connection.execute(ROLL_UP_SITE_WEEKS, site_id, first, last, min_week_views)
        for statement in REBUILD_ALL_TIME:
            await connection.execute(statement, site_id)
    return RebuildResult(max(days, 0), total, time.perf_counter() - started)


async def _lock_site(connection: PoolConnectionProxy, site_id: str) -> str:
    zone: str | None = await connection.fetchval(LOCK_SITE_FOR_REBUILD, site_id)
    if zone is None:
        raise UnknownSite(site_id)
    return zone


def _local_day(instant: datetime, zone: str) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()
