"""Measurements of the partitioned raw storage (issue #24), on a PostgreSQL of your choosing
(`--dsn`, default the machine's on 127.0.0.1:5432; each makes and drops its own databases).

    python -m bench.storage migration 5000000     # migration 0009 timed on N events of 0007
    python -m bench.storage statement ../main 30  # the writer's statement against another
                                                   # checkout's, batch by batch, alternated:
                                                   # time, PostgreSQL CPU and WAL per event
                                                   # (--batch N: events per batch)
    python -m bench.storage partitions            # report-shaped queries, monthly vs weekly

docs/benchmarks.md ("Partitioned raw events") has the figures and what they say.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.dataset import EventFactory
from bench.writer_load import PLAIN_INSERT_AND_UPSERT, REFERENCE_BATCH
from core.event_ids import new_event_id
from core.migrator import migrate
from writer.decoding import Row, row_of
from writer.store import EventStore

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/"
BATCH = 5000

# 0007's events, N of them over 12 months, 1,000 sites, a third anonymous: what 0009 converts.
FILL_UNDER_0007 = """
INSERT INTO events (event_id, site_id, event_type, path, user_id, occurred_at, referrer,
                    properties, received_at, stored_at, visitor_id, browser, os, device,
                    referrer_host, referrer_source, country)
SELECT md5(n::text)::uuid::text, 'site-' || (n % 1000), 'page_view', '/page/' || (n % 500),
       CASE WHEN n % 3 = 0 THEN NULL ELSE 'user-' || (n % 50000) END,
       t, CASE WHEN n % 4 = 0 THEN 'https://www.google.com/' END,
       CASE WHEN n % 2 = 0 THEN '{"plan": "pro"}' ELSE '{}' END::jsonb,
       t + interval '1 second', t + interval '2 seconds',
       CASE WHEN n % 3 = 0 THEN n % 100000 END, 'Chrome', 'Linux', 'desktop',
       CASE WHEN n % 4 = 0 THEN 'google.com' END, CASE WHEN n % 4 = 0 THEN 'search' END, 'DE'
FROM generate_series($1::bigint, $2::bigint) AS n,
     LATERAL (SELECT timestamptz '2024-11-01 00:00Z' + n * ($3::float8 * interval '1 second'))
     AS s(t)
"""

SIZES_AFTER = """
SELECT (SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits
        WHERE inhparent = 'events'::regclass) AS events,
       pg_size_pretty(pg_total_relation_size('event_ids')) AS event_ids,
       (SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass) AS partitions
"""


async def fresh_database(dsn: str, name: str, template: str | None = None) -> str:
    """The database `name`, made anew (empty, or a copy of `template`); its URL."""
    admin = await asyncpg.connect(dsn + "postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await admin.close()
    return dsn + name


async def time_migration(dsn: str, total: int) -> None:
    url = await fresh_database(dsn, "bench_storage_migration")
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, command_timeout=None)
    try:
        await migrate(pool, up_to=7)
        step = 365 * 86400 / total
        for first in range(0, total, 1_000_000):
            await pool.execute(FILL_UNDER_0007, first, min(total, first + 1_000_000) - 1, step)
        await pool.execute("VACUUM ANALYZE events")
        size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('events'))")
        print(f"{total:,} events under 0007: events and its indexes {size}")
        started = time.perf_counter()
        await migrate(pool)
        spent = time.perf_counter() - started
        after = await pool.fetchrow(SIZES_AFTER)
        assert after is not None
        print(
            f"0009 applied in {spent:.0f} s; events {after['events']} in {after['partitions']} "
            f"partitions, event_ids {after['event_ids']}"
        )
    finally:
        await pool.close()


_MIGRATE = (
    "import asyncio, asyncpg, sys\nfrom core.migrator import migrate\n"
    "async def main():\n    pool = await asyncpg.create_pool(sys.argv[1], min_size=1, max_size=1)\n"
    "    await migrate(pool)\n    await pool.close()\nasyncio.run(main())\n"
)


def _backend_cpu_seconds(pid: int) -> float | None:
    """CPU time a PostgreSQL backend of this machine has used (Linux), None if unreadable."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Contender:
    """One way of storing the rounds' events, on a database of its own."""

    name: str
    store: Callable[[list[Row]], Awaitable[int]]
    pool: asyncpg.Pool
    backend: int
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    wal: list[int] = field(default_factory=list)

    async def timed(self, rows: list[Row]) -> None:
        lsn = await self.pool.fetchval(WAL_POSITION)
        cpu = _backend_cpu_seconds(self.backend)
        started = time.perf_counter()
        stored = await self.store(rows)
        self.wall.append(time.perf_counter() - started)
        cpu_after = _backend_cpu_seconds(self.backend)
        if cpu is not None and cpu_after is not None:
            self.cpu.append(cpu_after - cpu)
        self.wal.append(await self.pool.fetchval(WAL_SINCE, lsn))
        if stored != len(rows):
            raise RuntimeError(f"{self.name}: {stored} of {len(rows)} events stored")


# What PostgreSQL wrote to its WAL meanwhile, every database of the server together: alone on
# the server, one statement at a time, that is the statement's own.
WAL_POSITION = "SELECT pg_current_wal_insert_lsn()"
WAL_SINCE = "SELECT (pg_current_wal_insert_lsn() - $1::pg_lsn)::bigint"


# The bench's reference as it was before 0009, when events had its key on (site_id, event_id).
PLAIN_KEYED = PLAIN_INSERT_AND_UPSERT.replace(
    "ON CONFLICT DO NOTHING", "ON CONFLICT (site_id, event_id) DO NOTHING"
)


def _plain(statement: str) -> Callable[[asyncpg.Pool, list[Row]], Awaitable[int]]:
    """The bench's reference: the rows' first nine columns, in its batches."""

    async def store_plain(pool: asyncpg.Pool, rows: list[Row]) -> int:
        stored = 0
        async with pool.acquire() as connection:
            for first in range(0, len(rows), REFERENCE_BATCH):
                part = rows[first : first + REFERENCE_BATCH]
                columns = [list(column) for column in zip(*part, strict=True)][:9]
                stored += await connection.fetchval(statement, *columns)
        return stored

    return store_plain


async def _store_this(pool: asyncpg.Pool, rows: list[Row]) -> int:
    return await EventStore(pool).store(rows)


def _report(contenders: list[_Contender], batch: int) -> None:
    first = contenders[0]
    for one in contenders:
        median = statistics.median(one.wall)
        quartiles = [round(q * 1000, 1) for q in statistics.quantiles(one.wall)]
        cpu = f"{sum(one.cpu) / len(one.cpu) / batch * 1e6:.1f} µs" if one.cpu else "unknown"
        against = ""
        if one is not first and one.cpu and first.cpu:
            ratios = [a / b for a, b in zip(one.cpu, first.cpu, strict=True) if b]
            against = f", {statistics.median(ratios):.3f}x the first's CPU round by round"
        print(
            f"{one.name}: median {median * 1000:.1f} ms per {batch:,}-event batch, "
            f"{batch / median:,.0f} ev/s (quartiles {quartiles} ms, {len(one.wall)} rounds); "
            f"PostgreSQL CPU {cpu} per event{against}; "
            f"WAL {statistics.median(one.wal) / batch:,.0f} bytes per event"
        )


async def compare_statements(
    dsn: str, other: Path, rounds: int, *, other_cached: bool, references: bool, batch: int
) -> None:
    """Each round stores the same `batch` new events through each contender, each on a database
    of its own, in an order turning round by round: the other checkout's statement on a
    database that checkout migrated (through asyncpg's statement cache, as its writer ran it
    before 0009, or prepared anew per batch with `other_cached` false, as since), this
    checkout's `EventStore.store`, and with `references` the bench's plain statement (writer
    phase) on this schema and, as it was before 0009, on 0008's with its key on (site_id,
    event_id). Prints each one's wall time per batch, its PostgreSQL backend's CPU time per
    event (when the server runs on this machine) and the WAL written per event."""
    spec = importlib.util.spec_from_file_location("other_queries", other / "writer/queries.py")
    assert spec is not None
    assert spec.loader is not None
    other_queries = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other_queries)
    urls = {}
    for name, tree in (("other", other), ("this", Path.cwd())):
        urls[name] = await fresh_database(dsn, f"bench_storage_{name}")
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _MIGRATE, urls[name]],
            cwd=tree,
            env={"PYTHONPATH": str(tree)},
            check=True,
        )
    pools: list[asyncpg.Pool] = []
    contenders: list[_Contender] = []

    async def contender(
        name: str, url: str, store: Callable[[asyncpg.Pool, list[Row]], Awaitable[int]]
    ) -> None:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        pools.append(pool)
        backend: int = await pool.fetchval("SELECT pg_backend_pid()")

        async def run(rows: list[Row]) -> int:
            return await store(pool, rows)

        contenders.append(_Contender(name, run, pool, backend))

    async def store_other(pool: asyncpg.Pool, rows: list[Row]) -> int:
        columns = [list(column) for column in zip(*rows, strict=True)]
        async with pool.acquire() as connection:
            if other_cached:
                stored: int = await connection.fetchval(other_queries.STORE_EVENTS, *columns)
            else:
                statement = await connection.prepare(other_queries.STORE_EVENTS, name="")
                stored = await statement.fetchval(*columns)
        return stored

    await contender(f"other ({other.name})", urls["other"], store_other)
    await contender("this (EventStore.store)", urls["this"], _store_this)
    if references:
        for name, version, statement in (
            ("plain statement", None, PLAIN_INSERT_AND_UPSERT),
            ("plain statement, 0008 schema", 8, PLAIN_KEYED),
        ):
            url = await fresh_database(dsn, f"bench_storage_plain_{version or 'now'}")
            pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
            try:
                await migrate(pool, up_to=version)
            finally:
                await pool.close()
            await contender(name, url, _plain(statement))

    factory = EventFactory(seed=3)
    now = datetime.now(UTC)
    try:
        for round_ in range(rounds):
            ids = [new_event_id() for _ in range(batch)]
            events = factory.events(batch, now - timedelta(days=3), timedelta(days=3), ids)
            rows = [row_of(e, now) for e in events]
            turn = round_ % len(contenders)
            for one in contenders[turn:] + contenders[:turn]:
                await one.timed(rows)
    finally:
        for pool in pools:
            await pool.close()
    _report(contenders, batch)


PARTITIONED = """
CREATE TABLE events (site_id text COLLATE "C" NOT NULL, event_id text COLLATE "C" NOT NULL,
                     occurred_at timestamptz NOT NULL, path text NOT NULL)
PARTITION BY RANGE (occurred_at);
CREATE INDEX ON events (site_id, occurred_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
"""
# Two years of 5,000 events a day over 20 sites.
FILL_PARTITIONED = """
INSERT INTO events
SELECT 'site-' || (n % 20), n::text, timestamptz '2024-01-01 00:00Z' + n * interval '17.28 s',
       '/p' || (n % 50)
FROM generate_series(0, 3649999) AS n
"""
# $1 site, $2 start, $3 end: as report_server's queries read the events.
QUERIES = {
    "30 days of a site": "SELECT count(*), count(DISTINCT path) FROM events "
    "WHERE site_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
    "a site's first event": "SELECT min(occurred_at) FROM events WHERE site_id = $1",
}


async def compare_partitionings(dsn: str, rounds: int = 50) -> None:
    """The same two years of events in monthly and in weekly partitions: the time of a
    report-shaped query over 30 days and of the site's first event (no pruning), asked the way
    the report server asks (prepared, parameters), medians over `rounds` calls."""
    for period in ("month", "week"):
        url = await fresh_database(dsn, "bench_storage_partitions")
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(PARTITIONED)
            start = datetime(2024, 1, 1, tzinfo=UTC)
            while start < datetime(2026, 1, 1, tzinfo=UTC):
                end = (
                    (start + timedelta(days=32)).replace(day=1)
                    if period == "month"
                    else start + timedelta(days=7)
                )
                await connection.execute(
                    f"CREATE TABLE events_{start:%Y%m%d} PARTITION OF events "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
                start = end
            await connection.execute(FILL_PARTITIONED)
            await connection.execute("VACUUM ANALYZE events")
            count = await connection.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
            )
            start = datetime(2025, 11, 1, tzinfo=UTC)
            for label, sql in QUERIES.items():
                args: list[object] = ["site-3"]
                if "$2" in sql:
                    args += [start, start + timedelta(days=30)]
                times = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    await connection.fetch(sql, *args)
                    times.append(time.perf_counter() - started)
                print(
                    f"{count} partitions of a {period}: {label}: median "
                    f"{statistics.median(times) * 1000:.2f} ms"
                )
        finally:
            await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="server URL, ending in '/'")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migration").add_argument("events", type=int)
    statement = commands.add_parser("statement")
    statement.add_argument("other", type=Path, help="the other checkout")
    statement.add_argument("rounds", type=int)
    statement.add_argument(
        "--other-unnamed",
        action="store_true",
        help="prepare the other's statement anew per batch (its writer's way since 0009)",
    )
    statement.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        help=f"events per batch (default {BATCH:,}; the writer's are smaller under a steady flow)",
    )
    statement.add_argument(
        "--references",
        action="store_true",
        help="also the bench's plain statement, on this schema and on 0008's",
    )
    commands.add_parser("partitions")
    args = parser.parse_args()
    if args.command == "migration":
        asyncio.run(time_migration(args.dsn, args.events))
    elif args.command == "statement":
        asyncio.run(
            compare_statements(
                args.dsn,
                args.other.resolve(),
                args.rounds,
                other_cached=not args.other_unnamed,
                references=args.references,
                batch=args.batch,
            )
        )
    else:
        asyncio.run(compare_partitionings(args.dsn))


if __name__ == "__main__":
    main()
