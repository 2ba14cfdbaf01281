"""What an event costs the whole stack, process by process: the CPU microseconds each of the
ingest server, NATS, the writer, PostgreSQL, the report server and the load generator spends
per accepted event, over HTTP `POST /event` and over `IngestBatch`, at a fixed offered rate.

    python -m bench.stack_cost                                  # today's settings
    python -m bench.stack_cost --http-rate 4000 --grpc-rate 40000 --seconds 20 --rounds 3
    python -m bench.stack_cost before:PYTHONSAFEPATH=1,PYTHONPATH=/tmp/base:/tmp/base/gen after:

A fixed rate, below what the stack sustains, makes the figures comparable between variants and
between runs on a busy machine: every variant gets the same work, and CPU time, unlike a rate
at saturation, hardly depends on what else runs. Each run is measured from its first request
until the writer has acknowledged everything (so every event's storing is counted); commits
are PostgreSQL's transactions committed in the database meanwhile (the writer's, and the
report server's few). What each group uses with no load is measured too (5 s before the HTTP
run): a cost per second, which a run at a low rate spreads over few events.

Each variant is `NAME:VAR=VALUE,...`, settings for every service process (an earlier commit's
tree first on the path compares code, as in bench.overhead). All run on one embedded NATS and
PostgreSQL; the services are started afresh for each variant's turn, in rounds, so that the
machine's moments fall on every variant alike. Needs wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.cluster import Cluster, Process
from bench.cpu import measuring
from bench.dataset import EventFactory, TrafficShape, recent_window
from bench.http_load import write_post_script
from bench.overhead import Variant
from bench.runner import HTTP_CONNECTIONS, RAISED_LIMITS, WRK_THREADS
from bench.stack_load import StackRun, grpc_run, http_run, pace_delay_ms, wait_drained
from bench.writer_load import create_database, migrate_database, wait_for_consumer
from core.settings import Settings

DATABASE = "analytics"
COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
# The groups of the table, in its order; the load generator is wrk or the gRPC client.
GROUPS = ("ingest", "NATS", "writer", "PostgreSQL", "report", "load generator")
IDLE_SECONDS = 5.0


@dataclass(frozen=True)
class Cost:
    """One measured run: events accepted, CPU seconds per group, commits, and its load run."""

    run: StackRun
    cpu_seconds: dict[str, float]
    commits: int

    def us_per_event(self, group: str) -> float:
        return self.cpu_seconds.get(group, 0.0) / max(1, self.run.accepted) * 1e6

    @property
    def total_us(self) -> float:
        return sum(self.us_per_event(group) for group in GROUPS)

    @property
    def events_per_commit(self) -> float:
        return self.run.accepted / max(1, self.commits)


async def _commits(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        # The statistics of this backend's snapshot would be stale otherwise.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        count: int = await connection.fetchval(COMMITS)
        return count
    finally:
        await connection.close()


def _measured(cluster: Cluster, database_url: str, load: Callable[[], StackRun]) -> Cost:
    """Run `load`, wait until the writer has stored it all, and say what each group spent."""
    settings = Settings()
    commits_before = asyncio.run(_commits(database_url))
    groups = cluster.cpu_groups()
    started = time.perf_counter()
    with measuring(groups, "load generator") as cpu:
        run = load()
        asyncio.run(wait_drained(cluster.nats.url, settings))
    seconds = time.perf_counter() - started
    commits = asyncio.run(_commits(database_url)) - commits_before
    return Cost(run, {name: cores * seconds for name, cores in cpu.cores.items()}, commits)


async def _vacuum(database_url: str) -> None:
    """What autovacuum would do to the tables the last turn grew, done before this turn's
    runs rather than during them."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


def _idle_cores(cluster: Cluster) -> dict[str, float]:
    """Cores each group uses with no load (the report server's and PostgreSQL's own work,
    polls): a cost per second, which a run spreads over its events."""
    with measuring(cluster.cpu_groups(), None) as cpu:
        time.sleep(IDLE_SECONDS)
    return cpu.cores


def _turn(
    cluster: Cluster,
    variant: Variant,
    *,
    script: Path,
    http_rate: float,
    grpc_rate: float,
    seconds: float,
    grpc_calls: int,
) -> tuple[dict[str, float], Cost, Cost]:
    """The variant's services started, their idle use measured, one paced HTTP run and one
    paced IngestBatch run, the services stopped."""
    database_url = cluster.postgres.url(DATABASE)
    asyncio.run(_vacuum(database_url))
    env = {"API_PROCESSES": "2", **RAISED_LIMITS, **variant.env}
    started: list[Process] = []
    try:
        writer = cluster.start_writer(database_url, env)
        started.append(writer)
        asyncio.run(wait_for_consumer(cluster.nats.url, Settings()))
        report = cluster.start_api("report", "report_server", database_url, env)
        started.append(report.process)
        ingest = cluster.start_api("ingest", "ingest_server", database_url, env)
        started.append(ingest.process)
        url = f"http://{ingest.http}/event"
        idle = _idle_cores(cluster)
        http = _measured(
            cluster,
            database_url,
            lambda: http_run(
                url,
                script,
                seconds=seconds,
                connections=HTTP_CONNECTIONS,
                threads=WRK_THREADS,
                database_url=database_url,
            ),
        )
        grpc = _measured(
            cluster,
            database_url,
            lambda: grpc_run(
                ingest.grpc,
                seconds=seconds,
                calls=grpc_calls,
                rate=grpc_rate,
                database_url=database_url,
            ),
        )
        for process in started:
            process.check_alive()
        return idle, http, grpc
    finally:
        for process in reversed(started):
            cluster.stop(process)


def _describe(name: str, door: str, cost: Cost) -> str:
    per = ", ".join(f"{group} {cost.us_per_event(group):.1f}" for group in GROUPS)
    return (
        f"{name} {door}: {cost.run.rate:,.0f} ev/s accepted, p99 "
        f"{cost.run.p99_ms or 0:.1f} ms, {cost.events_per_commit:,.0f} events a commit; "
        f"µs CPU an event: {per}; total {cost.total_us:.1f}"
    )


def _table(door: str, variants: list[Variant], costs: dict[str, list[Cost]]) -> str:
    """Median µs per event per group, one column per variant."""
    names = [variant.name for variant in variants]
    lines = [
        f"| {door}: µs CPU an event | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]

    def row(label: str, value: Callable[[Cost], float], form: str) -> None:
        cells = [form.format(statistics.median(value(c) for c in costs[n])) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for group in GROUPS:
        row(group, functools.partial(Cost.us_per_event, group=group), "{:.1f}")
    row("**all processes**", lambda cost: cost.total_us, "**{:.1f}**")
    row("events a commit", lambda cost: cost.events_per_commit, "{:,.0f}")
    row("accepted ev/s", lambda cost: cost.run.rate, "{:,.0f}")
    return "\n".join(lines)


def _idle_table(variants: list[Variant], idle: dict[str, list[dict[str, float]]]) -> str:
    """Median cores per group with no load, one column per variant."""
    names = [variant.name for variant in variants]
    lines = [
        "| idle: cores | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for group in ("ingest", "NATS", "writer", "PostgreSQL", "report"):
        cells = [f"{statistics.median(i.get(group, 0.0) for i in idle[n]):.3f}" for n in names]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_cost", description=__doc__)
    parser.add_argument("variants", nargs="*", default=["current:"])
    parser.add_argument("--http-rate", type=float, default=4000.0, help="events a second")
    parser.add_argument("--grpc-rate", type=float, default=40_000.0, help="events a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grpc-calls", type=int, default=16, help="IngestBatch calls in flight")
    arguments = parser.parse_args()
    variants = [Variant.parse(text) for text in arguments.variants]
    costs: dict[str, dict[str, list[Cost]]] = {
        door: {variant.name: [] for variant in variants} for door in ("HTTP", "gRPC")
    }
    idle: dict[str, list[dict[str, float]]] = {variant.name: [] for variant in variants}
    bodies = EventFactory(TrafficShape(), seed=3).json_bodies(200, *recent_window())
    with Cluster() as cluster:
        database_url = cluster.postgres.url(DATABASE)
        asyncio.run(create_database(cluster.postgres.url("postgres"), DATABASE))
        asyncio.run(migrate_database(database_url))
        # The pause that offers about --http-rate, answers taking a millisecond or so.
        delay = pace_delay_ms(arguments.http_rate, HTTP_CONNECTIONS, 1.0)
        script = write_post_script(cluster.root / "paced.lua", bodies, delay)
        turn = functools.partial(
            _turn,
            cluster,
            script=script,
            http_rate=arguments.http_rate,
            grpc_rate=arguments.grpc_rate,
            seconds=arguments.seconds,
            grpc_calls=arguments.grpc_calls,
        )
        for number in range(1, arguments.rounds + 1):
            for variant in variants:
                idle_cores, http, grpc = turn(variant)
                idle[variant.name].append(idle_cores)
                costs["HTTP"][variant.name].append(http)
                costs["gRPC"][variant.name].append(grpc)
                print(f"round {number}", _describe(variant.name, "HTTP", http), flush=True)
                print(f"round {number}", _describe(variant.name, "gRPC", grpc), flush=True)
    print()
    print(_table("HTTP POST /event", variants, costs["HTTP"]))
    print()
    print(_table("gRPC IngestBatch", variants, costs["gRPC"]))
    print()
    print(_idle_table(variants, idle))
    sys.exit(0)


if __name__ == "__main__":
    main()
