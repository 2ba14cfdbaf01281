"""Keeping PostgreSQL's storage in shape while the writer runs: monthly partitions of events
created ahead, raw events past RAW_EVENT_RETENTION_DAYS dropped a month at a time, stored event
ids past EVENT_ID_WINDOW_DAYS let go (migration 0009 says why each exists), and the weeks that
are over rolled up, their path views and users, where they have enough views (migration 0010,
core.week_rollups).

The writer does this at its start and every UPKEEP_SECONDS. Nothing here can make an event fail
to store: an event of a month without a partition goes to the default partition, and a step
that cannot take its locks in time (a long report holds one) is logged and done on the next
run. No report's numbers change: the aggregates are only added to by rollups, which a report
uses only where they add up to the days they roll up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from core.database import POSTGRES_UNAVAILABLE
from core.schema import STORAGE_UPKEEP_LOCK_KEY
from core.week_rollups import MIN_WEEK_VIEWS
from writer.queries import (
    BOUND_LOCK_WAIT,
    CREATE_EVENT_PARTITION,
    DATABASE_NOW,
    DELETE_OLD_DEFAULT_EVENTS,
    DROP_EVENT_PARTITION,
    EVENT_PARTITION_MONTHS,
    FORGET_OLD_EVENT_IDS,
    LOCK_STORAGE_UPKEEP,
    ROLL_UP_WEEK,
)

# How often a running writer does its upkeep. Partitions are made MONTHS_AHEAD months ahead,
# so an upkeep that fails for weeks still leaves every coming event a partition.
UPKEEP_SECONDS = 3600.0
MONTHS_AHEAD = 2
# Ids let go per statement: each delete is a short transaction of its own.
FORGET_CHUNK = 10_000
# The weeks over that each upkeep rolls up, or up again when events came for them since: a week
# given events later than that is read from its days, as exactly and more slowly.
ROLL_UP_WEEKS = 6

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upkept:
    """What one upkeep did."""

    created: list[date]  # the months whose partitions it created
    dropped: list[date]  # the months whose partitions it dropped
    forgotten_ids: int
    rolled_up: list[date]  # the weeks (their Mondays) some site was rolled up in


def month_of(instant: datetime) -> date:
    """The first of the UTC month holding `instant`."""
    return instant.astimezone(UTC).date().replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def week_of(day: date) -> date:
    """The Monday of `day`'s week, as the database's week_of (migration 0010)."""
    return day - timedelta(days=day.weekday())


class StorageUpkeep:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        retention_days: int,
        event_id_window_days: int,
        min_week_views: int = MIN_WEEK_VIEWS,
    ) -> None:
        """`retention_days`, `event_id_window_days`: 0 keeps raw events, or ids, for ever;
        `min_week_views`: the fewest views of a week rolled up (core.week_rollups)."""
        self._pool = pool
        self._retention = timedelta(days=retention_days) if retention_days else None
        self._window = timedelta(days=event_id_window_days) if event_id_window_days else None
        self._min_week_views = min_week_views

    async def run(self, now: datetime) -> Upkept:
        """One upkeep as of `now`. Raises what PostgreSQL raises, but a lock wait timed out."""
        created = await self.create_partitions(now)
        dropped = await self.drop_old_partitions(now) if self._retention else []
        forgotten = await self.forget_old_ids(now) if self._window else 0
        rolled_up = await self.roll_up_weeks(now)
        return Upkept(created, dropped, forgotten, rolled_up)

    async def create_partitions(self, now: datetime, since: date | None = None) -> list[date]:
        """Partitions for every month from the latest one events has (or `since`) to
        MONTHS_AHEAD months after `now`'s, each month in a transaction of its own."""
        existing = [row["month"] for row in await self._pool.fetch(EVENT_PARTITION_MONTHS)]
        month = since or (existing[-1] if existing else month_of(now))
        last = month_of(now)
        for _ in range(MONTHS_AHEAD):
            last = next_month(last)
        created = []
        while month <= last:
            if month not in existing and await self._step(
                "creating a partition", CREATE_EVENT_PARTITION, month
            ):
                created.append(month)
            month = next_month(month)
        return created

    async def drop_old_partitions(self, now: datetime) -> list[date]:
        """Drop the partitions whose months end RAW_EVENT_RETENTION_DAYS or more before `now`,
        and delete the default partition's events older than that."""
        assert self._retention is not None
        cutoff = now - self._retention
        dropped = []
        for row in await self._pool.fetch(EVENT_PARTITION_MONTHS):
            month: date = row["month"]
            if datetime.combine(next_month(month), time(), UTC) > cutoff:
                break
            if await self._step("dropping a partition", DROP_EVENT_PARTITION, month):
                dropped.append(month)
        await self._step(
            "deleting old events of the default partition", DELETE_OLD_DEFAULT_EVENTS, cutoff
        )
        return dropped

    async def forget_old_ids(self, now: datetime) -> int:
        """Let go of the event ids stored EVENT_ID_WINDOW_DAYS or more before `now`."""
        assert self._window is not None
        forgotten = 0
        while True:
            count: int = await self._pool.fetchval(
                FORGET_OLD_EVENT_IDS, now - self._window, FORGET_CHUNK
            )
            forgotten += count
            if count < FORGET_CHUNK:
                return forgotten

    async def roll_up_weeks(self, now: datetime, since: date | None = None) -> list[date]:
        """Roll up the path views and users of the last ROLL_UP_WEEKS weeks over before `now`
        (of every week from the one holding `since`), each in a transaction of its own, for the
        sites with enough views in them. A week is over once its Sunday has ended in every zone:
        from the Tuesday after it, in UTC."""
        after = week_of(now.astimezone(UTC).date() - timedelta(days=1))
        week = week_of(since) if since else after - timedelta(weeks=ROLL_UP_WEEKS)
        rolled_up = []
        while week < after:
            if await self._step("rolling up a week", ROLL_UP_WEEK, week, self._min_week_views):
                rolled_up.append(week)
            week += timedelta(weeks=1)
        return rolled_up

    async def _step(self, what: str, statement: str, argument: object, *more: object) -> bool:
        """Run one step in a transaction of its own; False if it waited too long for a lock
        (logged: the next run does it), else what the statement returns (True if nothing)."""
        async with self._pool.acquire() as connection:
            try:
                async with connection.transaction():
                    await connection.execute(LOCK_STORAGE_UPKEEP, STORAGE_UPKEEP_LOCK_KEY)
                    await connection.execute(BOUND_LOCK_WAIT)
                    result = await connection.fetchval(statement, argument, *more)
            except asyncpg.LockNotAvailableError:
                logger.warning(
                    "storage upkeep: %s (%s) waited too long for a lock; the next upkeep, in "
                    "%g s, does it",
                    what,
                    argument,
                    UPKEEP_SECONDS,
                )
                return False
        return result is None or bool(result)

    async def keep_up(self) -> None:
        """Run the upkeep now and every UPKEEP_SECONDS, for ever. A failed run is logged and
        the next one tries again: storing events never depends on it."""
        while True:
            try:
                # PostgreSQL's clock, which stamped event_ids.stored_at: the window does not
                # move with the writer's clock.
                upkept = await self.run(await self._pool.fetchval(DATABASE_NOW))
            except POSTGRES_UNAVAILABLE as error:
                logger.warning("storage upkeep: PostgreSQL is not reachable (%s)", error)
            except asyncpg.PostgresError:
                logger.exception("storage upkeep failed; the next upkeep tries again")
            else:
                if upkept.created or upkept.dropped or upkept.forgotten_ids or upkept.rolled_up:
                    logger.info(
                        "storage upkeep: created partitions for %s, dropped those of %s, "
                        "let go of %d event ids, rolled up path views of the weeks of %s",
                        [str(m) for m in upkept.created],
                        [str(m) for m in upkept.dropped],
                        upkept.forgotten_ids,
                        [str(w) for w in upkept.rolled_up],
                    )
            await asyncio.sleep(UPKEEP_SECONDS)
