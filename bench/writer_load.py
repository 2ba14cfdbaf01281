"""The writer figure and its reference.

Writer: with the writer stopped, fill the stream with N events through the ingest server's
IngestBatch (the production path and message format), start `python -m writer`, and time from
its first delivery until the stream is empty (every message acknowledged, which the writer
does only after the commit); then check that the events table grew by exactly N.

Reference: the plain idempotent-insert-plus-upsert statement the issue names, one statement per
2,000-row batch (INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING, and one
aggregate upsert from the returned rows), on one connection, into an identical schema, with
the column arrays built before the clock starts: what PostgreSQL itself can take.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import nats
from nats.js.errors import NotFoundError

from bench.cluster import BenchError, Cluster
from bench.cpu import CpuMeter, CpuUse, PidGroup
from bench.dataset import EventFactory, recent_window
from bench.grpc_load import LoadReport
from core.event_ids import new_event_id
from core.migrator import migrate
from core.settings import Address, Settings

POLL_SECONDS = 0.01
DRAIN_TIMEOUT_SECONDS = 300.0
REFERENCE_BATCH = 2000

PLAIN_INSERT_AND_UPSERT = """
WITH inserted AS (
    INSERT INTO events (event_id, site_id, event_type, path, user_id,
                        occurred_at, referrer, properties, received_at)
    SELECT event_id, site_id, event_type, path, user_id,
           occurred_at, referrer, properties::jsonb, received_at
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[], $7::text[], $8::text[], $9::timestamptz[]
    ) AS t(event_id, site_id, event_type, path, user_id,
           occurred_at, referrer, properties, received_at)
    ON CONFLICT DO NOTHING
    RETURNING site_id, event_type, (occurred_at AT TIME ZONE 'UTC')::date AS day, path
),
upserted AS (
    INSERT INTO daily_path_views AS d (site_id, event_type, day, path, views)
    SELECT site_id, event_type, day, path, count(*)
    FROM inserted
    GROUP BY site_id, event_type, day, path
    ORDER BY site_id, event_type, day, path
    ON CONFLICT (site_id, event_type, day, path)
    DO UPDATE SET views = d.views + excluded.views
)
SELECT count(*) FROM inserted
"""


@dataclass(frozen=True)
class Throughput:
    events: int
    seconds: float
    cpu: CpuUse | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def send_events(
    ingest_grpc: Address, events: int, seed: int, sites: int | None = None
) -> LoadReport:
    """Push exactly `events` events through IngestBatch with the gRPC load generator."""
    spread = [f"--sites={sites}"] if sites is not None else []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.grpc_load",
            str(ingest_grpc),
            "total",
            f"--events={events}",
            "--concurrency=4",
            f"--seed={seed}",
            *spread,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"the gRPC load generator failed:\n{done.stderr}")
    report = LoadReport(**json.loads(done.stdout))
    if report.accepted != events or report.errors:
        raise BenchError(
            f"filling the stream: {report.accepted} of {events} events accepted, "
            f"{report.errors} failed calls ({report.first_error})"
        )
    return report


async def purge_stream(nats_url: str, settings: Settings) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().purge_stream(settings.stream_name)
    finally:
        await nc.close()


async def wait_for_consumer(nats_url: str, settings: Settings) -> None:
    """Return once the writer's durable consumer exists (the writer has started once)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 60
        while True:
            try:
                await js.consumer_info(settings.stream_name, settings.writer_durable)
                return
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise BenchError("the writer did not create its consumer in 60s") from None
                await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def _delivered_sequence(nats_url: str, settings: Settings) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(settings.stream_name, settings.writer_durable)
        return info.delivered.stream_seq if info.delivered and info.delivered.stream_seq else 0
    finally:
        await nc.close()


async def _time_drain(
    nats_url: str, settings: Settings, delivered_before: int, meter: CpuMeter
) -> float:
    """Seconds from the writer's first delivery until nothing is pending or unacknowledged.

    The clock starts at the last poll that saw no delivery yet (at most POLL_SECONDS early),
    so the writer's process start and migration check are not counted but its first fetch is.
    `meter` runs from the first delivery seen to the end.
    """
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        started: float | None = None
        last_idle = time.perf_counter()
        while time.monotonic() < deadline:
            polled = time.perf_counter()
            info = await js.consumer_info(settings.stream_name, settings.writer_durable)
            delivered = info.delivered.stream_seq if info.delivered else 0
            if started is None:
                if delivered and delivered > delivered_before:
                    started = last_idle
                    meter.start()
                else:
                    last_idle = polled
            elif not info.num_pending and not info.num_ack_pending:
                return time.perf_counter() - started
            await asyncio.sleep(POLL_SECONDS)
        raise BenchError(f"the writer did not drain the stream in {DRAIN_TIMEOUT_SECONDS:.0f}s")
    finally:
        await nc.close()


async def count_events(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM events")
        return count
    finally:
        await connection.close()


def time_writer(
    cluster: Cluster,
    *,
    database_url: str,
    settings: Settings,
    ingest_grpc: Address,
    events: int,
    extra_env: Mapping[str, str],
    writers: int = 1,
    sites: int | None = None,
) -> Throughput:
    """One writer run: fill the stream with the writer stopped, then time `writers` writer
    processes sharing the durable consumer as they drain it."""
    nats_url = cluster.nats.url
    asyncio.run(purge_stream(nats_url, settings))
    send_events(ingest_grpc, events, seed=int(time.time()), sites=sites)
    before = asyncio.run(count_events(database_url))
    delivered_before = asyncio.run(_delivered_sequence(nats_url, settings))
    started = [cluster.start_writer(database_url, extra_env) for _ in range(writers)]
    try:
        meter = CpuMeter(cluster.cpu_groups(), None)
        seconds = asyncio.run(_time_drain(nats_url, settings, delivered_before, meter))
        cpu = meter.stop()
        for writer in started:
            writer.check_alive()
    finally:
        for writer in started:
            cluster.stop(writer)
    stored = asyncio.run(count_events(database_url)) - before
    if stored != events:
        raise BenchError(f"the writer stored {stored} new events, expected {events}")
    return Throughput(events, seconds, cpu)


async def create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def migrate_database(database_url: str) -> None:
    """The services' own migrations, as the writer applies them at start."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()


def _columns(events: int, seed: int) -> list[tuple[list[object], ...]]:
    """Column arrays of `events` new events, in REFERENCE_BATCH-row batches."""
    factory = EventFactory(seed=seed)
    start, span = recent_window()
    received_at = datetime.now(UTC)
    batches = []
    for offset in range(0, events, REFERENCE_BATCH):
        size = min(REFERENCE_BATCH, events - offset)
        columns: tuple[list[object], ...] = tuple([] for _ in range(9))
        for event in factory.events(size, start, span):
            row = (
                new_event_id(),
                event.site_id,
                event.event_type,
                event.path,
                event.user_id or None,
                event.timestamp.ToDatetime(tzinfo=UTC),
                event.referrer or None,
                json.dumps(dict(event.properties), sort_keys=True),
                received_at,
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        batches.append(columns)
    return batches


async def time_plain_statement(
    database_url: str, events: int, seed: int, cpu_groups: dict[str, PidGroup]
) -> Throughput:
    batches = _columns(events, seed)
    connection = await asyncpg.connect(database_url)
    meter = CpuMeter(cpu_groups, None)
    try:
        await connection.execute("SELECT 1")
        meter.start()
        started = time.perf_counter()
        stored = 0
        for columns in batches:
            stored += await connection.fetchval(PLAIN_INSERT_AND_UPSERT, *columns)
        seconds = time.perf_counter() - started
        cpu = meter.stop()
    finally:
        await connection.close()
    if stored != events:
        raise BenchError(f"the plain statement stored {stored} events, expected {events}")
    return Throughput(events, seconds, cpu)
