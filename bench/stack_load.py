"""The whole stack under load: every service running, the writer draining as in production,
and the load a client offers either as fast as the stack answers (a probe) or paced to a rate.

A run counts the events accepted and, from the aggregates the writer keeps in the same
transaction as the events, the events stored meanwhile; what was accepted and not stored by
the end is the backlog the run left in the stream. A rate is sustained when that backlog stays
within a couple of seconds of events: the writer keeps up.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats

from bench.cluster import ROOT, BenchError
from bench.grpc_load import LoadReport
from bench.http_load import run_wrk
from core.settings import Address, Settings

STORED_EVENTS = "SELECT coalesce(sum(views), 0)::bigint FROM daily_totals"
# A backlog of at most this many seconds of the run's events is flat: the writer's batches in
# flight and its fetch interval, not a queue that grows.
FLAT_BACKLOG_SECONDS = 2.0
DRAIN_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class StackRun:
    accepted: int
    seconds: float
    stored: int  # events the writer stored during the run
    failures: int  # non-2xx answers, socket errors, failed calls
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def stored_rate(self) -> float:
        return self.stored / self.seconds

    @property
    def backlog(self) -> int:
        return max(0, self.accepted - self.stored)

    @property
    def flat(self) -> bool:
        return self.backlog <= FLAT_BACKLOG_SECONDS * self.rate


async def stored_events(database_url: str) -> int:
    """Events the writer has stored, from the aggregates (a few rows, not the events)."""
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval(STORED_EVENTS)
        return count
    finally:
        await connection.close()


async def wait_drained(nats_url: str, settings: Settings) -> float:
    """Seconds until the writer's consumer has nothing pending or unacknowledged."""
    started = time.perf_counter()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        while time.perf_counter() - started < DRAIN_TIMEOUT_SECONDS:
            info = await js.consumer_info(settings.stream_name, settings.writer_durable)
            if not info.num_pending and not info.num_ack_pending:
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
    raise BenchError(f"the writer did not drain the stream in {DRAIN_TIMEOUT_SECONDS:.0f}s")


def http_run(
    url: str,
    script: Path,
    *,
    seconds: float,
    connections: int,
    threads: int,
    database_url: str,
) -> StackRun:
    before = asyncio.run(stored_events(database_url))
    result = run_wrk(url, connections=connections, threads=threads, seconds=seconds, script=script)
    stored = asyncio.run(stored_events(database_url)) - before
    return StackRun(
        accepted=result.requests - result.bad_responses,
        seconds=result.seconds,
        stored=stored,
        failures=result.bad_responses + result.socket_errors,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
    )


def grpc_run(
    target: Address,
    *,
    seconds: float,
    calls: int,
    rate: float | None,
    database_url: str,
) -> StackRun:
    before = asyncio.run(stored_events(database_url))
    argv = [
        sys.executable,
        "-m",
        "bench.grpc_load",
        str(target),
        "batch",
        f"--seconds={seconds}",
        "--warmup=0",
        f"--concurrency={calls}",
    ]
    if rate is not None:
        argv.append(f"--rate={rate:.0f}")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise BenchError(f"the gRPC load generator failed:\n{done.stderr}")
    report = LoadReport(**json.loads(done.stdout))
    stored = asyncio.run(stored_events(database_url)) - before
    return StackRun(
        accepted=report.accepted,
        seconds=report.seconds,
        stored=stored,
        failures=report.errors + report.rejected,
    )


def pace_delay_ms(rate: float, connections: int, latency_ms: float) -> int:
    """The pause per connection between requests for about `rate` requests per second in
    all, each answered in about `latency_ms`."""
    return max(0, round(connections * 1000 / rate - latency_ms))
