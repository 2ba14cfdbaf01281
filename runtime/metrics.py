"""Prometheus metrics of a service process (prometheus-client): the requests of both doors, by
route or method and status, timed; database pools; and `/metrics`, which serves them with every
other metric of the process's default registry (the services' own: events, publishing, the
writer's batches).

Several processes serving one port (API_PROCESSES) share their metrics through
prometheus-client's multiprocess mode: the parent gives the workers a directory
(PROMETHEUS_MULTIPROC_DIR, see runtime.workers) where each keeps its values, and `/metrics`,
whichever worker answers it, adds up every worker's: a scrape sees the whole service, not the
process it happened to reach. Counters and histograms are summed; the gauges of pools are summed
over the workers alive. The process's own CPU, memory and garbage collection metrics exist only
for a single process (prometheus-client cannot merge them).
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from transports.http_app import Handler, Reply, Request
from transports.openapi import Api, operation, returns

# No `_created` series beside every counter and histogram: a timestamp per series that
# dashboards do not use, doubling what each scrape reads.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# From half a millisecond (an answer from memory) to ten seconds (a bounded wait given up).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
POOL_POLL_SECONDS = 1.0

HTTP_REQUESTS = Counter(
    "analytics_http_requests",
    "HTTP requests answered, by route (as declared; 'unmatched' for none), method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "analytics_http_request_duration_seconds",
    "Seconds from an HTTP request's head to its answer, by route and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_REQUESTS = Counter(
    "analytics_grpc_requests",
    "gRPC calls finished, by method (/package.Service/Method) and status code",
    ["method", "code"],
)
GRPC_DURATION = Histogram(
    "analytics_grpc_request_duration_seconds",
    "Seconds a gRPC call took, by method (a stream: from its start to its end)",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
THROTTLED = Counter(
    "analytics_throttled_requests",
    "Requests (HTTP) and calls or stream messages (gRPC) a rate limit refused, by limit "
    "(ingest_site, ingest_ip, report_caller)",
    ["limit"],
)
POOL_CONNECTIONS = Gauge(
    "analytics_db_pool_connections",
    "PostgreSQL connections of a service's pool: open ('size'), open and free ('idle'), and "
    "the most it may open ('max')",
    ["pool", "state"],
    multiprocess_mode="livesum",
)


# Counted in memory on the request paths, into prometheus-client every FLUSH_SECONDS and
# before this process answers /metrics (see BatchedCounter).
FLUSH_SECONDS = 1.0
_BATCHED: list[BatchedCounter | BatchedHistogram] = []


class BatchedCounter:
    """A labelled counter counted in memory and added to prometheus-client's at each flush.

    An increment of prometheus-client's own takes a lock and, in multiprocess mode, writes
    the value to its file: several microseconds per request where a request costs tens
    (docs/benchmarks.md). Here it is an addition, and the flush writes once per second. A
    scrape sees this process's counts as of now, the other workers' as of their last flush."""

    __slots__ = ("_child", "pending")

    def __init__(self, child: Counter) -> None:
        self._child = child
        self.pending = 0.0
        _BATCHED.append(self)

    def inc(self, amount: float = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, 0.0
            self._child.inc(pending)


class BatchedHistogram:
    """A labelled histogram observed in memory, likewise: each observation is a bucket count
    and a sum, which the flush adds to prometheus-client's (its `_buckets` and `_sum`, as
    its own `observe` does, since it has no call that adds many observations at once)."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._bounds = list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        _BATCHED.append(self)

    def observe(self, amount: float) -> None:
        # The first bucket whose bound is at least the amount, as prometheus-client counts.
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def flush(self) -> None:
        if not any(self._counts):
            return
        counts, self._counts = self._counts, [0] * len(self._bounds)
        for bucket, count in zip(self._child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        amount, self._sum = self._sum, 0.0
        self._child._sum.inc(amount)


def throttled(limit: str, counted: bool) -> BatchedCounter | None:
    """The counter of the requests `limit` refuses; None when nothing is counted (METRICS=0)."""
    return BatchedCounter(THROTTLED.labels(limit)) if counted else None


def flush() -> None:
    """Add what was counted in memory to prometheus-client's values."""
    for batched in _BATCHED:
        batched.flush()


async def flushing() -> None:
    """Flush every FLUSH_SECONDS until cancelled, then once more."""
    try:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            flush()
    finally:
        flush()


class HttpObserver:
    """Counts and times each HTTP request (transports.http_app's Observer), by its labels."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], BatchedCounter] = {}
        self._durations: dict[tuple[str, str], BatchedHistogram] = {}

    def __call__(self, route: str, method: str, status: int, seconds: float) -> None:
        try:
            count = self._counts[route, method, status]
        except KeyError:
            count = self._counts[route, method, status] = BatchedCounter(
                HTTP_REQUESTS.labels(route or "unmatched", method, str(status))
            )
        count.pending += 1
        try:
            duration = self._durations[route, method]
        except KeyError:
            duration = self._durations[route, method] = BatchedHistogram(
                HTTP_DURATION.labels(route or "unmatched", method)
            )
        duration.observe(seconds)


class GrpcObserver:
    """Counts and times each gRPC call (transports.grpc_interceptors' CallObserver)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], BatchedCounter] = {}
        self._durations: dict[str, BatchedHistogram] = {}

    def __call__(self, method: str, code: str, seconds: float) -> None:
        try:
            count = self._counts[method, code]
        except KeyError:
            count = self._counts[method, code] = BatchedCounter(GRPC_REQUESTS.labels(method, code))
        count.pending += 1
        try:
            duration = self._durations[method]
        except KeyError:
            duration = self._durations[method] = BatchedHistogram(GRPC_DURATION.labels(method))
        duration.observe(seconds)


def metrics_routes() -> dict[str, dict[str, Handler]]:
    """`GET /metrics`: the Prometheus text format."""
    return {"/metrics": {"GET": _metrics}}


# The OpenAPI declaration of that route (transports.openapi).
METRICS_API: Api = {
    "/metrics": {
        "GET": operation(
            "The service's metrics, in Prometheus's text format",
            {"200": returns("the metrics", {"type": "string"}, "text/plain")},
            tag="operations",
        )
    }
}


async def _metrics(request: Request) -> Reply:
    flush()
    # Reading the other workers' files and rendering every series: off the event loop.
    text = await asyncio.to_thread(exposition)
    return Reply(HTTPStatus.OK, text, ((b"content-type", CONTENT_TYPE_LATEST.encode()),))


def exposition() -> bytes:
    """Every metric of this process, or of all the workers of its service."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class Pool(Protocol):
    """What is read of a connection pool (asyncpg's), for its gauges."""

    def get_size(self) -> int: ...
    def get_idle_size(self) -> int: ...
    def get_max_size(self) -> int: ...


async def watch_pool(pool: Pool, name: str) -> None:
    """Keep the pool's gauges current until cancelled (polled: in multiprocess mode a gauge is
    read from the values each process wrote, not asked at scrape time)."""
    gauges: list[tuple[Gauge, Callable[[], int]]] = [
        (POOL_CONNECTIONS.labels(name, "size"), pool.get_size),
        (POOL_CONNECTIONS.labels(name, "idle"), pool.get_idle_size),
        (POOL_CONNECTIONS.labels(name, "max"), pool.get_max_size),
    ]
    while True:
        for gauge, value in gauges:
            gauge.set(value())
        await asyncio.sleep(POOL_POLL_SECONDS)
