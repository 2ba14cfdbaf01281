"""The stats figures: stored histories of two sizes (by default 1M and 10M events), loaded
through the writer's own store, and the latency of GetStats (grpc.aio client) and `GET /stats`
(wrk, one connection) against a report server reading each, for one day, a range of days and
all time.

The large history is the small one plus the rest: the small database, once loaded, is copied
as the template of the large one (a file copy inside PostgreSQL), so the events common to both
are stored once. The rest goes on the same days (traffic growth: every site busier) or on as
many days before them as keep the events a day the same (history growth: a store that has been
receiving the same traffic for longer).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Literal, TypeAlias
from urllib.parse import urlencode

import asyncpg
import grpc
from analytics.v1 import report_pb2, report_pb2_grpc

from bench.cluster import BenchError
from bench.dataset import DatasetShape
from bench.http_load import run_wrk
from bench.loader import LoadResult, load, make_partitions, prepare, roll_up_weeks
from bench.writer_load import create_database
from core.settings import Address

WARMUP_CALLS = 5
WARMUP_SECONDS = 1.0
MAX_CALLS = 2000
RANGE_DAYS = 30

# What the large history has more of than the small one: events on the same days (every site
# busier), or days before them at the same events a day (the same traffic, received for longer).
Growth = Literal["traffic", "history"]
GROWTHS: tuple[Growth, ...] = ("traffic", "history")

# What a stats request asks for: one day, a range of days (first, last), or all time (None).
Days = date | tuple[date, date] | None


def range_ending(last: date) -> tuple[date, date]:
    """The RANGE_DAYS days ending on `last`."""
    return last - timedelta(days=RANGE_DAYS - 1), last


def large_shape(shape: DatasetShape, small: int, large: int, growth: Growth) -> DatasetShape:
    """The days the large history covers when the small one holds `small` events over `shape`:
    the same ones, or (history growth) as many more before them as hold `large - small` events
    at the small one's events a day. Both end on the same day, so reports ask both alike."""
    if growth == "traffic":
        return shape
    return replace(shape, days=round(shape.days * large / small))


def request_fields(days: Days) -> dict[str, str]:
    """The GetStatsRequest fields, and the `GET /stats` parameters, that ask for `days`."""
    if days is None:
        return {}
    if isinstance(days, tuple):
        return {"start_date": days[0].isoformat(), "end_date": days[1].isoformat()}
    return {"date": days.isoformat()}


@dataclass(frozen=True)
class Datasets:
    small_url: str
    large_url: str
    small_events: int
    large_events: int
    loads: tuple[LoadResult, ...]

    @property
    def load_seconds(self) -> float:
        return sum(result.seconds for result in self.loads)


async def _vacuum_analyze(database_url: str) -> None:
    """What autovacuum does to freshly loaded tables, done now rather than at its leisure:
    statistics for the planner and visibility maps for index-only scans."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "VACUUM (ANALYZE) daily_totals, daily_path_views, daily_user_bitmaps, "
            "weekly_path_views, weekly_user_bitmaps, weekly_rollups, all_time_path_views, "
            "all_time_user_bitmaps, site_users, site_user_counters, sites"
        )
        await connection.execute("VACUUM (ANALYZE) events")
    finally:
        await connection.close()


async def _copy_database(admin_url: str, template: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
        )
    finally:
        await connection.close()


def build_datasets(
    url_of: dict[str, str],
    admin_url: str,
    shape: DatasetShape,
    *,
    small: int,
    large: int,
    workers: int,
    batch_size: int,
    growth: Growth = "traffic",
) -> Datasets:
    """Fill `stats_small` with `small` events over `shape` and `stats_large` with `large` (the
    same events and `large - small` more, on the same days or on earlier ones: see
    large_shape). `url_of` maps those database names to their URLs."""
    asyncio.run(create_database(admin_url, "stats_small"))
    asyncio.run(prepare(url_of["stats_small"], shape))
    first = load(
        url_of["stats_small"], shape, small, workers=workers, batch_size=batch_size, seed=11
    )
    asyncio.run(roll_up_weeks(url_of["stats_small"], shape))
    asyncio.run(_vacuum_analyze(url_of["stats_small"]))
    asyncio.run(_copy_database(admin_url, "stats_small", "stats_large"))
    whole = large_shape(shape, small, large, growth)
    earlier = whole.days - shape.days
    if earlier:
        asyncio.run(make_partitions(url_of["stats_large"], whole))
    rest = load(
        url_of["stats_large"],
        shape.preceding(earlier) if earlier else shape,
        large - small,
        workers=workers,
        batch_size=batch_size,
        seed=12,
    )
    asyncio.run(roll_up_weeks(url_of["stats_large"], whole))
    asyncio.run(_vacuum_analyze(url_of["stats_large"]))
    return Datasets(url_of["stats_small"], url_of["stats_large"], small, large, (first, rest))


# What a history takes on disk: the events table and every table the writer keeps beside it,
# their indexes and TOAST included.
DISK_BYTES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname = 'events'), 0),
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname <> 'events'), 0)
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


async def disk_bytes(database_url: str) -> tuple[int, int]:
    """(events, everything else) in bytes. A partitioned events table counts its partitions
    (pg_total_relation_size of the parent is 0, so they are summed through pg_inherits)."""
    connection = await asyncpg.connect(database_url)
    try:
        sizes = await connection.fetchrow(DISK_BYTES)
        assert sizes is not None
        events, others = sizes
        partitions = await connection.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'events'::regclass"
        )
    finally:
        await connection.close()
    return int(events) + int(partitions), int(others)


# A report asked of a stub (ReportServiceAsyncStub exists for the type checker only).
Call: TypeAlias = "Callable[[report_pb2_grpc.ReportServiceAsyncStub], Awaitable[object]]"


async def grpc_latencies_ms(
    targets: Sequence[Address], call: Call, seconds: float
) -> list[list[float]]:
    """Each `call`'s latencies against each target, the calls alternating between the targets
    one by one, so that whatever else the machine does falls on all of them alike."""
    async with contextlib.AsyncExitStack() as channels:
        stubs = [
            report_pb2_grpc.ReportServiceStub(
                await channels.enter_async_context(grpc.aio.insecure_channel(str(target)))
            )
            for target in targets
        ]
        warm_until = time.perf_counter() + WARMUP_SECONDS
        for _ in range(WARMUP_CALLS):
            for stub in stubs:
                await call(stub)
            if time.perf_counter() > warm_until:
                break
        latencies: list[list[float]] = [[] for _ in stubs]
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and len(latencies[0]) < MAX_CALLS:
            for stub, measured in zip(stubs, latencies, strict=True):
                started = time.perf_counter()
                await call(stub)
                measured.append((time.perf_counter() - started) * 1000)
    return latencies


def grpc_p50s_ms(
    targets: Sequence[Address], site_id: str, days: Days, seconds: float
) -> list[float]:
    """GetStats p50 against each of `targets` (report servers of different histories), measured
    together: see _grpc_p50s."""
    fields = request_fields(days)
    request = report_pb2.GetStatsRequest(
        site_id=site_id,
        date=fields.get("date", ""),
        start_date=fields.get("start_date", ""),
        end_date=fields.get("end_date", ""),
    )
    latencies = asyncio.run(
        grpc_latencies_ms(targets, lambda stub: stub.GetStats(request), seconds)
    )
    return [statistics.median(measured) for measured in latencies]


def http_p50s_ms(
    targets: Sequence[Address], site_id: str, days: Days, seconds: float
) -> list[float]:
    """`GET /stats` p50 against each of `targets`, measured together: one-second wrk runs (one
    connection) alternate between the targets, in swapped order every round, and each
    target's figure is the median of its runs' p50s. A burst of other work on the machine
    then lands in one run of one target, not in a whole target's measurement."""
    query = {"site_id": site_id} | request_fields(days)
    urls = [f"http://{target}/stats?{urlencode(query)}" for target in targets]
    for url in urls:
        _wrk_p50_ms(url, 1)  # warm up
    p50s: list[list[float]] = [[] for _ in urls]
    for round_ in range(max(1, round(seconds))):
        order = list(zip(urls, p50s, strict=True))
        for url, measured in order if round_ % 2 == 0 else reversed(order):
            measured.append(_wrk_p50_ms(url, 1))
    return [statistics.median(measured) for measured in p50s]


def _wrk_p50_ms(url: str, seconds: float) -> float:
    result = run_wrk(url, connections=1, threads=1, seconds=seconds)
    if result.bad_responses or result.socket_errors:
        raise BenchError(f"GET {url}: {result.bad_responses} bad answers")
    return result.p50_ms


# The work of this release's migrations that grows with the events, done again on a loaded
# history: how long an upgrade of a history of this size takes. 0009 copies every event into
# the partitioned table, every (site_id, event_id) into event_ids, and builds their indexes; here
# into scratch tables (unpartitioned: routing rows to their month is a small part of it),
# dropped again.
MIGRATION_WORK = {
    "0009_partitioned_events": (
        "CREATE TABLE migration_events (LIKE events INCLUDING DEFAULTS)",
        "INSERT INTO migration_events SELECT * FROM events",
        "CREATE INDEX ON migration_events (site_id, occurred_at)",
        "CREATE TABLE migration_event_ids (LIKE event_ids INCLUDING DEFAULTS)",
        "INSERT INTO migration_event_ids SELECT site_id, event_id, stored_at FROM events",
        "ALTER TABLE migration_event_ids ADD PRIMARY KEY (site_id, event_id)",
        "DROP TABLE migration_events, migration_event_ids",
    ),
}


async def time_migrations(database_url: str) -> dict[str, float]:
    """Seconds each migration's work takes on the database."""
    connection = await asyncpg.connect(database_url)
    seconds = {}
    try:
        for name, statements in MIGRATION_WORK.items():
            started = time.perf_counter()
            async with connection.transaction():
                for statement in statements:
                    await connection.execute(statement)
            seconds[name] = time.perf_counter() - started
    finally:
        await connection.close()
    return seconds
