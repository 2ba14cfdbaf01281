"""Weekly path views (migration 0010): what GetStats's range statement costs with them and
without, for one busy site stored at two densities, on a PostgreSQL of your choosing (`--dsn`,
default the machine's on 127.0.0.1:5432; it makes and drops its own databases).

    python -m bench.week_rollups [--days 98] [--calls 300]

Each density is a database of its own holding `days` days of one site, stored through the
writer's own statement (bench.loader): as many page views a day as the busiest site of the
scale benchmark has at 10M and at 50M stored events (docs/benchmarks.md, "Scale"). Its weeks
are rolled up as the writer's upkeep does (timed). Then RANGE_STATS answers the last 30 and 90
days, its whole weeks read from their rollups or, for comparison, every day from
daily_path_views as before 0010; the calls alternate, p50 of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import date, timedelta

import asyncpg

from bench.dataset import DatasetShape, TrafficShape
from bench.loader import load, prepare, roll_up_weeks
from bench.storage import DEFAULT_DSN, fresh_database
from report_server.queries import RANGE_STATS
from report_server.stats import DayRange, whole_weeks
from writer.storage import week_of

SITE = "busy.example.com"
# The busiest site's page views a day in the scale benchmark at 10M and at 50M stored events;
# page views are 85 % of its events.
DENSITIES = {"10M": 3_027, "50M": 15_136}
PAGE_VIEW_SHARE = 0.85
RANGES = (30, 90)


def _shape(days: int) -> DatasetShape:
    return DatasetShape(days=days, traffic=TrafficShape(sites=((SITE, 1.0),)))


async def _roll_up(url: str, shape: DatasetShape) -> float:
    """Seconds the upkeep takes to roll up every week of the history; then VACUUM ANALYZE."""
    seconds = await roll_up_weeks(url, shape)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()
    return seconds


async def _time(urls: dict[str, str], last: date, calls: int) -> None:
    connections = {name: await asyncpg.connect(url) for name, url in urls.items()}
    try:
        for days in RANGES:
            period = DayRange(last - timedelta(days=days - 1), last)
            no_weeks = (last + timedelta(days=1),) * 2
            variants = [
                (name, how, (SITE, "page_view", period.start, period.end, 10, *weeks))
                for name in urls
                for how, weeks in (("weeks", whole_weeks(period)), ("days", no_weeks))
            ]
            spent: dict[tuple[str, str], list[float]] = {(n, h): [] for n, h, _ in variants}
            answers: dict[str, list[object]] = {}
            for call in range(calls):
                turn = call % len(variants)
                for name, how, args in variants[turn:] + variants[:turn]:
                    started = time.perf_counter()
                    rows = await connections[name].fetch(RANGE_STATS, *args)
                    spent[(name, how)].append((time.perf_counter() - started) * 1000)
                    answers.setdefault(f"{name} {how}", [tuple(row) for row in rows])
            for name in urls:
                if answers[f"{name} weeks"] != answers[f"{name} days"]:
                    raise RuntimeError(f"{name}, {days} days: the two ways answer differently")
                weeks_ms = statistics.median(spent[(name, "weeks")])
                days_ms = statistics.median(spent[(name, "days")])
                print(
                    f"{days} days at {name} density: p50 {weeks_ms:.2f} ms with weekly rollups, "
                    f"{days_ms:.2f} ms from the days alone ({weeks_ms / days_ms:.2f}x; "
                    f"{calls} calls each, alternating)"
                )
    finally:
        for connection in connections.values():
            await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.week_rollups", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="server URL, ending in '/'")
    parser.add_argument("--days", type=int, default=98, help="days of history (default 98)")
    parser.add_argument("--calls", type=int, default=300, help="calls per variant")
    args = parser.parse_args()
    shape = _shape(args.days)
    urls = {}
    for name, views in DENSITIES.items():
        url = asyncio.run(fresh_database(args.dsn, f"bench_week_rollups_{name.lower()}"))
        asyncio.run(prepare(url, shape))
        events = round(views / PAGE_VIEW_SHARE) * args.days
        loaded = load(url, shape, events, workers=2, batch_size=2000, seed=21)
        seconds = asyncio.run(_roll_up(url, shape))
        weeks = len({week_of(day) for day in shape.all_days})
        print(
            f"{name} density: {loaded.events:,} events over {args.days} days loaded in "
            f"{loaded.seconds:.0f} s; the upkeep rolled up its {weeks} weeks in {seconds:.2f} s"
        )
        urls[name] = url
    asyncio.run(_time(urls, shape.last_day, args.calls))


if __name__ == "__main__":
    main()
