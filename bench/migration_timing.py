"""How long the schema migrations take on a large table: raw events generated straight into a
database at an older schema version, then each later migration applied and timed, as the
writer applies them at start.

    python -m bench.migration_timing                       # 10M events at version 3
    python -m bench.migration_timing --events 1000000 --from-version 5

The events are spread over 1,000 sites and the year before today, with a day's aggregate row
per site and day (the rows a migration that reads the aggregates finds); the columns are those
of the first migration, which every later version keeps. Runs on its own embedded PostgreSQL
with production settings (fsync on).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from bench.cluster import Cluster
from bench.writer_load import create_database
from core.migrator import migrate
from core.schema import migrations

SITES = 1000
DAYS = 365

GENERATE_EVENTS = """
INSERT INTO events (event_id, site_id, event_type, path, user_id, occurred_at, referrer,
                    properties, received_at)
SELECT 'e' || n,
       'site-' || (n % $2) || '.example.com',
       CASE WHEN n % 10 = 0 THEN 'click' ELSE 'page_view' END,
       '/page/' || (n % 997),
       CASE WHEN n % 3 = 0 THEN NULL ELSE 'u' || (n % 50000) END,
       now() - make_interval(secs => (n % ($3 * 86400))::double precision),
       CASE WHEN n % 4 = 0 THEN 'https://www.google.com/' END,
       '{}'::jsonb,
       now()
FROM generate_series($4::bigint, $1::bigint - 1) AS n
"""

GENERATE_DAILY_TOTALS = """
INSERT INTO daily_totals (site_id, event_type, day, views, users)
SELECT site_id, event_type, occurred_at::date, count(*), count(DISTINCT user_id)
FROM events
GROUP BY site_id, event_type, occurred_at::date
"""

CHUNK = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.migration_timing", description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--from-version", type=int, default=3, help="the schema the events are stored under"
    )
    arguments = parser.parse_args()
    with Cluster() as cluster:
        asyncio.run(create_database(cluster.postgres.url("postgres"), "analytics"))
        asyncio.run(
            _run(cluster.postgres.url("analytics"), arguments.events, arguments.from_version)
        )


async def _run(database_url: str, events: int, from_version: int) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await migrate(pool, up_to=from_version)
        started = time.perf_counter()
        async with pool.acquire() as connection:
            for first in range(0, events, CHUNK):
                await connection.execute(
                    GENERATE_EVENTS, min(events, first + CHUNK), SITES, DAYS, first
                )
                print(f"generated {min(events, first + CHUNK):,} events", flush=True)
            await connection.execute(GENERATE_DAILY_TOTALS)
            await connection.execute("VACUUM ANALYZE")
            size = await connection.fetchval(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            )
        print(
            f"{events:,} events at version {from_version} in "
            f"{time.perf_counter() - started:.0f} s ({size})"
        )
        total = 0.0
        for migration in migrations():
            if migration.version <= from_version:
                continue
            started = time.perf_counter()
            await migrate(pool, up_to=migration.version)
            seconds = time.perf_counter() - started
            total += seconds
            print(f"{migration.version:04d}_{migration.name}: {seconds:.2f} s", flush=True)
        print(f"every migration after version {from_version}: {total:.2f} s")
    finally:
        await pool.close()


if __name__ == "__main__":
    main()
