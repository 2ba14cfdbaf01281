"""`python -m bench.rebuild_rate`: how fast `analytics-replay rebuild` counts a busy site's day
again, which is how long the writer's batches holding that site wait (writer/rebuild.py: a day
is one transaction under the site's row lock). Stores one day of one site through the writer's
statement (EventStore.store) on an embedded, durable PostgreSQL, then rebuilds the day twice.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.dataset import EventFactory, TrafficShape
from core.migrator import migrate
from devstack.embedded import EmbeddedPostgres
from writer.decoding import row_of
from writer.rebuild import rebuild
from writer.store import EventStore

SITE = "big.example.com"
DAY = date(2025, 10, 1)
BATCH = 5000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild_rate", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="events of the day")
    events = parser.parse_args().events
    with (
        tempfile.TemporaryDirectory(prefix="rebuild-rate-") as root,
        EmbeddedPostgres(Path(root)) as server,
    ):
        asyncio.run(_measure(server.url(), events))


async def _measure(url: str, total: int) -> None:
    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
        await migrate(pool)
        store = EventStore(pool)
        factory = EventFactory(TrafficShape(sites=((SITE, 1.0),)), seed=5)
        start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
        for offset in range(0, total, BATCH):
            count = min(BATCH, total - offset)
            ids = [f"e{offset + n}" for n in range(count)]
            events = factory.events(count, start, timedelta(days=1), ids)
            await store.store([row_of(event, start + timedelta(days=1)) for event in events])
        await pool.execute("VACUUM (ANALYZE)")
        for attempt in (1, 2):
            started = time.perf_counter()
            result = await rebuild(pool, SITE, DAY, DAY)
            seconds = time.perf_counter() - started
            print(
                f"rebuild {attempt}: one day of one site, {result.events:,} events in "
                f"{seconds:.2f} s = {result.events / seconds:,.0f} events/s"
            )


if __name__ == "__main__":
    main()
