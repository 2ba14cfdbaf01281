"""`python -m bench.history_queries`: what the report server's queries that read a site's whole
history cost as days accumulate, apart from the events they count. Loads a small history and
one five times as long at the same events a day (the stats phase's `--grow history`, at a
size that loads in seconds) on an embedded PostgreSQL, then times, alternating call by call
between the two: SITE_FACTS (every report's first query; its `min(occurred_at)` over `events`
opens every monthly partition), AGGREGATE_ALL_TIME (the report API's all time) and
ALL_TIME_STATS (GetStats over all time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.dataset import DatasetShape
from bench.stats_load import build_datasets
from devstack.embedded import EmbeddedPostgres
from report_server.queries import ALL_TIME_STATS
from report_server.report_queries import AGGREGATE_ALL_TIME, SITE_FACTS

CALLS = 2000
WARMUP_CALLS = 100
PARTITIONS = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history_queries", description=__doc__)
    parser.add_argument("--events", type=int, default=40_000, help="events of the small history")
    events = parser.parse_args().events
    shape = DatasetShape()
    with (
        tempfile.TemporaryDirectory(prefix="history-queries-") as root,
        EmbeddedPostgres(Path(root)) as server,
    ):
        names = ("stats_small", "stats_large")
        build_datasets(
            {name: server.url(name) for name in names},
            server.url(),
            shape,
            small=events,
            large=5 * events,
            workers=2,
            batch_size=10_000,
            growth="history",
        )
        asyncio.run(_measure([server.url(name) for name in names], shape))


async def _measure(urls: list[str], shape: DatasetShape) -> None:
    site = shape.traffic.busiest_site
    connections = [await asyncpg.connect(url) for url in urls]
    try:
        partitions = [await c.fetchval(PARTITIONS) for c in connections]
        print(f"monthly partitions of events: {partitions[0]} and {partitions[1]}")
        for name, query, args in (
            ("SITE_FACTS", SITE_FACTS, [site]),
            ("AGGREGATE_ALL_TIME", AGGREGATE_ALL_TIME, [site, ["page_view"]]),
            ("ALL_TIME_STATS", ALL_TIME_STATS, [site, "page_view", 10]),
        ):
            latencies: list[list[float]] = [[] for _ in connections]
            for call in range(WARMUP_CALLS + CALLS):
                for connection, measured in zip(connections, latencies, strict=True):
                    started = time.perf_counter()
                    await connection.fetch(query, *args)
                    if call >= WARMUP_CALLS:
                        measured.append((time.perf_counter() - started) * 1000)
            small, large = (statistics.median(measured) for measured in latencies)
            print(
                f"{name}, the busiest site: p50 {small:.3f} ms ({shape.days} days), "
                f"{large:.3f} ms ({5 * shape.days:,} days): {large / small:.2f}x"
            )
    finally:
        for connection in connections:
            await connection.close()


if __name__ == "__main__":
    main()
