"""Fills a database with stored history for the stats figures, through the writer's own code:
events become rows with `writer.decoding.row_of` and are stored with
`writer.store.EventStore.store`, the same conversion and statement (aggregates included) the
writer runs for every batch it consumes. Only the stream in front of it is skipped.

Worker processes each own a disjoint set of days, so their batches never touch the same
aggregate rows and never wait on each other's row locks; each worker generates its next batch
while PostgreSQL stores the previous one.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.dataset import DatasetShape, EventFactory
from bench.writer_load import migrate_database
from core.event_ids import new_event_id
from core.week_rollups import MIN_WEEK_VIEWS
from writer.decoding import Row, row_of
from writer.storage import StorageUpkeep, month_of
from writer.store import EventStore


@dataclass(frozen=True)
class LoadResult:
    events: int
    stored: int
    seconds: float
    workers: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


REGISTER_SITE = (
    "INSERT INTO sites (site_id, name, time_zone) VALUES ($1, $1, $2) ON CONFLICT DO NOTHING"
)


async def prepare(dsn: str, shape: DatasetShape) -> None:
    """A new database made ready for the shape's history: migrated, its sites registered and
    its partitions made."""
    await migrate_database(dsn)
    await register_sites(dsn, shape)
    await make_partitions(dsn, shape)


async def register_sites(dsn: str, shape: DatasetShape) -> None:
    """Register the shape's sites with their zones before their events, as their owners
    would: the writer then counts each event on its site's local day."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.executemany(REGISTER_SITE, list(shape.zones.items()))
    finally:
        await connection.close()


async def make_partitions(dsn: str, shape: DatasetShape) -> None:
    """The monthly partitions of the history's events, as the writer's upkeep would have made
    them while the history was being received (without them, it would all be stored in the
    default partition)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        upkeep = StorageUpkeep(pool, retention_days=0, event_id_window_days=0)
        first = datetime.combine(shape.all_days[0], datetime.min.time(), UTC)
        await upkeep.create_partitions(datetime.now(UTC), since=month_of(first))
    finally:
        await pool.close()


async def roll_up_weeks(
    dsn: str, shape: DatasetShape, min_week_views: int = MIN_WEEK_VIEWS
) -> float:
    """The weeks of the history rolled up, as the writer's upkeep would have done once each was
    over (it looks back only a few weeks); the seconds it took."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        upkeep = StorageUpkeep(
            pool, retention_days=0, event_id_window_days=0, min_week_views=min_week_views
        )
        started = time.perf_counter()
        await upkeep.roll_up_weeks(datetime.now(UTC), since=shape.all_days[0])
        return time.perf_counter() - started
    finally:
        await pool.close()


def load(
    dsn: str,
    shape: DatasetShape,
    total: int,
    *,
    workers: int,
    batch_size: int,
    seed: int,
) -> LoadResult:
    """Store `total` events spread over the shape's days; blocks until done."""
    per_day = sorted(shape.events_per_day(total).items())
    # Deal the days out round-robin, largest first, so the workers finish close together.
    per_day.sort(key=lambda item: item[1], reverse=True)
    shares: list[list[tuple[str, int]]] = [[] for _ in range(workers)]
    for index, (day, count) in enumerate(per_day):
        shares[index % workers].append((day.isoformat(), count))
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with context.Pool(workers) as pool:
        stored = pool.starmap(
            _worker,
            [(dsn, shape, share, batch_size, seed * 1000 + n) for n, share in enumerate(shares)],
        )
    return LoadResult(total, sum(stored), time.perf_counter() - started, workers)


def _worker(
    dsn: str, shape: DatasetShape, days: list[tuple[str, int]], batch_size: int, seed: int
) -> int:
    return asyncio.run(_store_days(dsn, shape, days, batch_size, seed))


async def _store_days(
    dsn: str, shape: DatasetShape, days: list[tuple[str, int]], batch_size: int, seed: int
) -> int:
    factory = EventFactory(shape.traffic, seed)
    # (day, size) of every batch, in order; generating one (in a thread, while the event loop
    # waits on PostgreSQL) overlaps storing the previous one.
    plan = [
        (datetime.fromisoformat(day_text).replace(tzinfo=UTC), min(batch_size, count - offset))
        for day_text, count in days
        for offset in range(0, count, batch_size)
    ]

    def generate(index: int) -> list[Row]:
        start, size = plan[index]
        events = factory.events(size, start, timedelta(days=1), _event_ids(size))
        received_at = start + timedelta(days=1)
        return [row_of(event, received_at) for event in events]

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    store = EventStore(pool)
    stored = 0
    try:
        batch = generate(0) if plan else []
        for index in range(1, len(plan) + 1):
            following = asyncio.to_thread(generate, index) if index < len(plan) else _nothing()
            count, batch = await asyncio.gather(store.store(batch), following)
            stored += count
    finally:
        await pool.close()
    return stored


async def _nothing() -> list[Row]:
    return []


def _event_ids(count: int) -> list[str]:
    """`count` UUIDv7s as the ingest servers assign them (`new_event_id`), made faster for
    bulk: one fresh id's time and random bits, with a counter in its last 48 bits."""
    prefix = new_event_id()[:24]
    return [f"{prefix}{n:012x}" for n in range(count)]
