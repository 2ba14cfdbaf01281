"""What idle live watchers cost ingestion: `POST /event` with no `WatchLive` stream open on a
report server, with one, and with 1,000, measured round after round in one run, with wrk as
`make bench` drives it.

    python -m bench.live_watchers                    # 1,000 watchers, 3 rounds of 10 s
    python -m bench.live_watchers --watchers 5000 --rounds 5

The watchers watch sites that receive no events (a dashboard left open on a quiet site), so
what is measured is what their being there costs: the report server's one subscription to
the stream's live subjects (every event, while anyone watches: the stream's messages carry
many sites' events each) and the watchers' bookkeeping, on the same 2 cores as the ingest
server. One watcher against none shows the subscription's price; 1,000 against one, the
watchers'. The writer is stopped during the runs and the stream emptied
after each, as in `make bench`. Needs wrk.
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

import grpc
from analytics.v1 import report_pb2, report_pb2_grpc

from bench.cluster import ApiService, BenchError, Cluster
from bench.cpu import measuring
from bench.dataset import EventFactory, TrafficShape, recent_window
from bench.http_load import WrkResult, run_wrk, write_post_script
from bench.runner import HTTP_CONNECTIONS, WRK_THREADS
from bench.writer_load import create_database, purge_stream, wait_for_consumer
from core.settings import Settings

# A channel carries this many watchers: HTTP/2 servers cap the streams of a connection.
WATCHERS_PER_CHANNEL = 100
READY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Round:
    watchers: int
    result: WrkResult
    ingest_cores: float
    report_cores: float


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_watchers", description=__doc__)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    sys.exit(_run(arguments.watchers, arguments.seconds, arguments.rounds))


def _run(watchers: int, seconds: float, rounds: int) -> int:
    settings = Settings()
    with Cluster(durable=False) as cluster:
        database_url = cluster.postgres.url("analytics")
        asyncio.run(create_database(cluster.postgres.url("postgres"), "analytics"))
        # The writer starts once to migrate and create the stream, then waits its turn.
        writer = cluster.start_writer(database_url)
        try:
            asyncio.run(wait_for_consumer(cluster.nats.url, settings))
        finally:
            cluster.stop(writer)
        ingest = cluster.start_api(
            "ingest", "ingest_server", database_url, {"API_PROCESSES": "2", "LOG_LEVEL": "WARNING"}
        )
        report = cluster.start_api(
            "report", "report_server", database_url, {"LOG_LEVEL": "WARNING"}
        )
        bodies = EventFactory(TrafficShape(), seed=3).json_bodies(200, *recent_window())
        script = write_post_script(cluster.root / "post_event.lua", bodies)
        url = f"http://{ingest.http}/event"
        groups = cluster.cpu_groups()

        def measure(count: int) -> Round:
            with measuring({"ingest": groups["ingest"], "report": groups["report"]}, "wrk") as cpu:
                result = run_wrk(
                    url,
                    connections=HTTP_CONNECTIONS,
                    threads=WRK_THREADS,
                    seconds=seconds,
                    script=script,
                )
            asyncio.run(purge_stream(cluster.nats.url, settings))
            measured = Round(count, result, cpu.cores["ingest"], cpu.cores["report"])
            print(
                f"{count:,} watchers: {result.rate:,.0f} req/s, p99 {result.p99_ms:.2f} ms, "
                f"{result.bad_responses + result.socket_errors} errors; ingest "
                f"{measured.ingest_cores:.2f} cores, report {measured.report_cores:.2f} cores",
                flush=True,
            )
            return measured

        measure(0)  # warm up
        counts = (0, 1, watchers)
        results: dict[int, list[Round]] = {count: [] for count in counts}
        for _ in range(rounds):
            for count in counts:
                results[count].append(
                    asyncio.run(_while_watching(report, count, functools.partial(measure, count)))
                )
    _report(watchers, results)
    return 0


async def _while_watching(report: ApiService, count: int, run: Callable[[], Round]) -> Round:
    """Open `count` watchers of quiet sites, run the measurement in a thread while they stay
    open, then cancel them."""
    channels = [
        grpc.aio.insecure_channel(str(report.grpc))
        for _ in range(-(-count // WATCHERS_PER_CHANNEL))
    ]
    ready = asyncio.Semaphore(0)
    tasks = [
        asyncio.create_task(
            _watch(
                report_pb2_grpc.ReportServiceStub(channels[n // WATCHERS_PER_CHANNEL]),
                f"quiet-{n}.example.com",
                ready,
            )
        )
        for n in range(count)
    ]
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for _ in range(count):  # each watcher's first update: it is registered
            await asyncio.wait_for(ready.acquire(), max(0.0, deadline - time.monotonic()))
        measured = await asyncio.to_thread(run)
        failed = [task for task in tasks if task.done()]
        if failed:
            raise BenchError(f"{len(failed)} watchers ended during the run: {failed[0]!r}")
        return measured
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


async def _watch(
    stub: report_pb2_grpc.ReportServiceAsyncStub, site: str, ready: asyncio.Semaphore
) -> None:
    async for _update in stub.WatchLive(report_pb2.WatchLiveRequest(site_id=site)):
        ready.release()


def _report(watchers: int, results: dict[int, list[Round]]) -> None:
    """The rate with one watcher and with many against the rate with none, round by round
    (each round's runs ran back to back, so they share the machine's moment)."""
    print()
    for count in (1, watchers):
        pairs = list(zip(results[count], results[0], strict=True))
        rates = [with_.result.rate / without.result.rate for with_, without in pairs]
        ingest_cpu = [
            _cpu_us(with_.ingest_cores, with_.result)
            / _cpu_us(without.ingest_cores, without.result)
            for with_, without in pairs
        ]
        print(
            f"{count:,} idle watchers / none: rate "
            + ", ".join(f"{ratio:.1%}" for ratio in rates)
            + f" (median {statistics.median(rates):.1%}); ingest CPU a request "
            + ", ".join(f"{ratio:.1%}" for ratio in ingest_cpu)
            + f" (median {statistics.median(ingest_cpu):.1%}); report server "
            + ", ".join(f"{with_.report_cores:.2f}" for with_, _ in pairs)
            + " cores"
        )


def _cpu_us(cores: float, result: WrkResult) -> float:
    return cores * result.seconds / max(1, result.requests) * 1e6


if __name__ == "__main__":
    main()
