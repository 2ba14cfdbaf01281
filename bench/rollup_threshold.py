"""Rolling up only the weeks with MIN_WEEK_VIEWS views (core.week_rollups, migration 0011)
against rolling up every week, side by side in one run: what the rollups take on disk, and
what GetStats's range statement costs for a busy site and a typical one, on a PostgreSQL of
your choosing (`--dsn`, default the machine's on 127.0.0.1:5432; it makes its own databases,
and makes them again on the next run).

    python -m bench.rollup_threshold [--events 2000000] [--calls 300]

The history is the stats benchmark's small one (bench.dataset.DatasetShape: 1,000 sites over
365 days), stored through the writer's own statement (bench.loader), then copied: one copy has
its weeks rolled up as the writer's upkeep does, the other with every week rolled up however
few its views (as before 0011). Then RANGE_STATS answers the last 30 and 90 days from each
copy, for weeks far over the threshold, just under it and far under it (_cases); the calls
alternate, p50 of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta

import asyncpg

from bench.dataset import DatasetShape
from bench.loader import load, prepare, roll_up_weeks
from bench.stats_load import disk_bytes
from bench.storage import DEFAULT_DSN, fresh_database
from core.week_rollups import MIN_WEEK_VIEWS
from report_server.queries import RANGE_STATS
from report_server.stats import DayRange, whole_weeks

SOURCE = "bench_rollup_threshold"
# Each copy by the fewest views of a week it rolls up.
COPIES = {f"weeks of {MIN_WEEK_VIEWS:,}+ views": MIN_WEEK_VIEWS, "every week": 1}
RANGES = (30, 90)
WEEKLY_TABLES = ("weekly_path_views", "weekly_user_bitmaps", "weekly_rollups")


async def _roll_up(url: str, shape: DatasetShape, min_week_views: int) -> str:
    """Every week of the history rolled up with `min_week_views`, then VACUUM ANALYZE; what
    the rollups take."""
    seconds = await roll_up_weeks(url, shape, min_week_views)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        await pool.execute("VACUUM (ANALYZE)")
        sizes = {
            table: await pool.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
            for table in WEEKLY_TABLES
        }
        weeks = await pool.fetchval("SELECT count(*) FROM weekly_rollups")
    finally:
        await pool.close()
    return (
        f"{weeks:,} (site, event type, week) rolled up in {seconds:.0f} s; "
        f"{sum(sizes.values()) / 2**20:,.1f} MiB: "
        + ", ".join(f"{table} {size / 2**20:,.1f}" for table, size in sizes.items())
    )


def _cases(shape: DatasetShape) -> list[tuple[str, str]]:
    """What is timed: the busiest site's page views (its weeks all busy), the quieter weeks
    that lose their rollups, the busiest site's clicks and the fifth site's page views, just
    under the threshold, and the typical site's page views, far under it."""
    busiest = shape.traffic.busiest_site
    fifth = shape.traffic.sites[4][0]
    return [
        (busiest, "page_view"),
        (busiest, "click"),
        (fifth, "page_view"),
        (shape.typical_site, "page_view"),
    ]


async def _time(urls: dict[str, str], shape: DatasetShape, calls: int) -> None:
    connections = {name: await asyncpg.connect(url) for name, url in urls.items()}
    last = shape.last_day
    try:
        for site, event_type in _cases(shape):
            for days in RANGES:
                period = DayRange(last - timedelta(days=days - 1), last)
                weeks = whole_weeks(period)
                args = (site, event_type, period.start, period.end, 10, *weeks)
                spent: dict[str, list[float]] = {name: [] for name in urls}
                answers = set()
                for call in range(calls):
                    turn = call % len(urls)
                    names = list(urls)
                    for name in names[turn:] + names[:turn]:
                        started = time.perf_counter()
                        rows = await connections[name].fetch(RANGE_STATS, *args)
                        spent[name].append((time.perf_counter() - started) * 1000)
                        answers.add(tuple(tuple(row) for row in rows))
                if len(answers) != 1:
                    raise RuntimeError(f"{site}, {days} days: the copies answer differently")
                print(
                    f"{site} {event_type}, {days} days: p50 "
                    + ", ".join(
                        f"{statistics.median(times):.2f} ms with {name}"
                        for name, times in spent.items()
                    )
                    + f" ({calls} calls each, alternating)"
                )
    finally:
        for connection in connections.values():
            await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup_threshold", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="server URL, ending in '/'")
    parser.add_argument("--events", type=int, default=2_000_000, help="events stored")
    parser.add_argument("--calls", type=int, default=300, help="calls per copy")
    args = parser.parse_args()
    shape = DatasetShape()
    source = asyncio.run(fresh_database(args.dsn, SOURCE))
    asyncio.run(prepare(source, shape))
    loaded = load(source, shape, args.events, workers=2, batch_size=2000, seed=11)
    print(f"{loaded.events:,} events over {shape.days} days loaded in {loaded.seconds:.0f} s")
    urls = {}
    for number, (name, min_week_views) in enumerate(COPIES.items()):
        url = asyncio.run(fresh_database(args.dsn, f"{SOURCE}_{number}", SOURCE))
        rolled_up = asyncio.run(_roll_up(url, shape, min_week_views))
        events, rest = asyncio.run(disk_bytes(url))
        print(f"{name}: {rolled_up}; {(events + rest) / args.events:,.0f} bytes per event in all")
        urls[name] = url
    asyncio.run(_time(urls, shape, args.calls))


if __name__ == "__main__":
    main()
