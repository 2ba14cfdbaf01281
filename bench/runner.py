"""The whole benchmark, phase by phase, on one stack:

1. HTTP: wrk against `POST /event` of the ingest server and against the raw ASGI reference,
   interleaved run by run.
2. gRPC: the grpc.aio load generator against IngestBatch, then IngestStream.
3. Writer: the writer draining a pre-filled stream, then the plain statement, run by run.
4. Whole stack: every service running, the writer draining, HTTP and then IngestBatch load:
   a probe as fast as the stack answers, then a minute at the highest rate the writer keeps
   up with (the probe's, or just under what the writer stored during it).
5. Stats: the small and large stored histories, GetStats and `GET /stats` against each.
6. Rate limits: `POST /event` and IngestBatch against two ingest servers started for it, one
   with its rate limits on and one with them off, run by run.
7. Memory: the peak RSS every service process reached in all of the above.

Every service runs with its rate limits raised out of the load generators' reach (one address
sending tens of thousands of events a second): on, so that every figure pays what they cost,
but refusing nothing (`--service-env` may set them otherwise).

The writer is stopped during the ingest phases 1 and 2, so that those figures are what the
ingest server and JetStream do on this machine, not what is left to them beside a busy writer
and PostgreSQL (phase 4 measures that); the stream is emptied between phases. A phase that
fails is reported as an error row and the others still run.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.cluster import ROOT, ApiService, BenchError, Cluster, Process
from bench.cpu import measuring, process_tree
from bench.dataset import DatasetShape, EventFactory, TrafficShape, recent_window
from bench.grpc_load import BATCH, CONNECTIONS, STREAM_EVENTS, LoadReport
from bench.http_load import WrkResult, run_wrk, write_browser_script, write_post_script
from bench.report import (
    ERROR,
    INFO,
    LOGS_DIR,
    REFERENCE,
    Row,
    Table,
    median,
    millis,
    percent,
    rate,
    verdict,
    write_results,
)
from bench.reports_load import FIGURES as REPORT_FIGURES
from bench.reports_load import ReportFigure, report_latencies_ms
from bench.stack_load import (
    FLAT_BACKLOG_SECONDS,
    StackRun,
    grpc_run,
    http_run,
    pace_delay_ms,
    wait_drained,
)
from bench.stats_load import (
    RANGE_DAYS,
    Datasets,
    Days,
    Growth,
    build_datasets,
    disk_bytes,
    grpc_p50s_ms,
    http_p50s_ms,
    large_shape,
    range_ending,
    time_migrations,
)
from bench.writer_load import (
    REFERENCE_BATCH,
    Throughput,
    create_database,
    migrate_database,
    purge_stream,
    time_plain_statement,
    time_writer,
    wait_for_consumer,
)
from core.settings import Address, Settings
from devstack.embedded import accepts_connections, free_port

HTTP_CONNECTIONS = 64
WRK_THREADS = 2
# IngestStream calls in flight: each carries STREAM_EVENTS events, so more would not finish
# within a run.
GRPC_STREAMS = 4
TIME_LIMIT_SECONDS = 15 * 60
RSS_LIMIT_MB = 150.0
SERVICES = ("ingest", "writer", "report")

# Targets of the issue.
HTTP_RATE = 10_000.0
HTTP_P99_MS = 10.0
HTTP_RATIO = 0.40
# Browser-shaped POST /event against the plain one, in the same run.
BROWSER_RATIO = 0.80
GRPC_RATE = 150_000.0
WRITER_RATE = 50_000.0
WRITER_RATIO = 0.60
DAY_P50_MS = 10.0
RANGE_P50_MS = 50.0
GROWTH = 1.5
# The whole stack's, on the same machine, load generator included.
STACK_HTTP_RATE = 15_000.0
STACK_HTTP_RATIO = 0.50
STACK_GRPC_RATE = 200_000.0
# Ingestion with rate limits on against off, in the same run.
LIMITS_RATIO = 0.90

# The rate limits every service of the bench runs with: on, out of reach.
RAISED_LIMITS = dict.fromkeys(
    (
        "INGEST_RATE_PER_SITE",
        "INGEST_BURST_PER_SITE",
        "INGEST_RATE_PER_IP",
        "INGEST_BURST_PER_IP",
        "REPORT_RATE_PER_CALLER",
        "REPORT_BURST_PER_CALLER",
    ),
    "1000000000",
)
LIMITS_OFF = {"INGEST_RATE_PER_SITE": "0", "INGEST_RATE_PER_IP": "0"}


@dataclass(frozen=True)
class Plan:
    runs: int
    http_seconds: float
    grpc_seconds: float
    warmup_seconds: float
    writer_events: int
    stats_small: int
    stats_large: int
    stats_seconds: float
    load_workers: int = 2
    load_batch: int = 10_000
    # What the large stats history has more of: events on the same days, or earlier days.
    stats_growth: Growth = "traffic"
    phases: tuple[str, ...] = ("http", "grpc", "writer", "stack", "stats", "limits")
    # The whole-stack phase: the probe as fast as the stack answers, the search for the
    # highest rate the writer keeps up with (paced runs), then the sustained run.
    probe_seconds: float = 15
    search_seconds: float = 6
    search_steps: int = 4
    sustain_seconds: float = 60
    service_env: dict[str, str] = field(default_factory=dict)
    # API_PROCESSES of the ingest server: one process's core is what limits ingestion.
    ingest_processes: int = 2
    # IngestBatch calls in flight, as from several backends at once: with a few, each ingest
    # process idles while its calls wait for their PubAck.
    grpc_calls: int = 16
    # The sites POST /event's bodies spread over evenly; None: the traffic shape's 4 sites.
    # Many (a hosted service's small sites) show whether throughput depends on the sites.
    http_sites: int | None = None
    writer_sites: int | None = None
    reference_path: Path = ROOT / ".venv" / "bench-reference"
    quick: bool = False
    # Exit with 1 when a figure misses its target (otherwise only errors fail the command).
    strict: bool = False

    @classmethod
    def full(cls, **overrides: object) -> Plan:
        plan = cls(
            runs=3,
            http_seconds=10,
            grpc_seconds=10,
            warmup_seconds=2,
            writer_events=300_000,
            stats_small=1_000_000,
            stats_large=10_000_000,
            stats_seconds=3,
        )
        return _with(plan, overrides)

    @classmethod
    def quick_plan(cls, **overrides: object) -> Plan:
        plan = cls(
            runs=1,
            http_seconds=3,
            grpc_seconds=3,
            warmup_seconds=1,
            writer_events=50_000,
            stats_small=100_000,
            stats_large=1_000_000,
            stats_seconds=1,
            probe_seconds=4,
            search_seconds=3,
            search_steps=2,
            sustain_seconds=8,
            quick=True,
        )
        return _with(plan, overrides)


def _with(plan: Plan, overrides: dict[str, object]) -> Plan:
    values = {key: value for key, value in overrides.items() if value is not None}
    return Plan(**{**plan.__dict__, **values})


def plan_runs_everything(plan: Plan) -> bool:
    return set(plan.phases) >= {"http", "grpc", "writer", "stack", "stats", "limits"}


def count_label(events: int) -> str:
    return f"{events / 1_000_000:g}M"


class Progress:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.0f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    plan: Plan
    cluster: Cluster
    table: Table
    say: Progress
    settings: Settings = field(default_factory=Settings)
    ingest: ApiService | None = None
    datasets: Datasets | None = None
    # The HTTP phase's request bodies and the raw handler's median rate, for the stack phase.
    http_bodies: list[bytes] = field(default_factory=list)
    raw_rate: float | None = None

    def database_url(self, name: str) -> str:
        return self.cluster.postgres.url(name)

    def stop(self, process: Process | None) -> None:
        if process is not None:
            self.cluster.stop(process)


def _guarded(
    ctx: Context, phase: str, figures: list[tuple[str, str]], body: Callable[[], None]
) -> None:
    """Run a phase; if it fails, report its figures as errors and go on."""
    try:
        body()
    except Exception as error:
        ctx.say(f"{phase} failed: {error}")
        traceback.print_exc(file=sys.stderr)
        problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        for figure, target in figures:
            ctx.table.error(figure, target, problem[:300])


# --- HTTP ------------------------------------------------------------------------------------

HTTP_FIGURE = f"HTTP POST /event, 1 event/request, {HTTP_CONNECTIONS} connections: throughput"
HTTP_TARGET = f"≥ {HTTP_RATE:,.0f} ev/s and ≥ {percent(HTTP_RATIO)} of raw ASGI"
HTTP_P99_FIGURE = "HTTP POST /event: p99 latency (answer after JetStream PubAck)"
HTTP_P99_TARGET = f"≤ {HTTP_P99_MS:g} ms"
RAW_FIGURE = "reference: raw ASGI handler (uvicorn + uvloop + httptools, orjson, no I/O)"
BROWSER_FIGURE = (
    "HTTP POST /event, browser-shaped (text/plain, Origin, user agent, forwarded IP; bot check "
    "and derivation on): throughput"
)
BROWSER_TARGET = f"≥ {percent(BROWSER_RATIO)} of plain POST /event in the same run"
# The user agents of the browser-shaped requests: the common browsers of desktops and phones.
BROWSER_USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
]


def _browser_bodies(bodies: list[bytes]) -> list[bytes]:
    """The plain bodies as a tracker sends them: no user_id (the server derives a visitor), a
    referrer on some, utm_ properties on others."""
    shaped = []
    for index, body in enumerate(bodies):
        event = json.loads(body)
        event.pop("user_id", None)
        if index % 3 == 0:
            event["referrer"] = "https://www.google.com/"
        if index % 5 == 0:
            event.setdefault("properties", {})["utm_source"] = "newsletter"
        shaped.append(json.dumps(event).encode())
    return shaped


def _start_raw_asgi(ctx: Context) -> tuple[Process, str]:
    env = dict(os.environ, PYTHONPATH=str(ctx.plan.reference_path))
    check = subprocess.run(
        [sys.executable, "-c", "import uvloop, httptools, orjson"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise BenchError(
            f"uvloop, httptools and orjson are not importable from {ctx.plan.reference_path} "
            "(`make bench` installs them there from bench/reference-requirements.txt)"
        )
    port = free_port()
    process = ctx.cluster.spawn(
        "raw-asgi", [sys.executable, "-m", "bench.raw_asgi", str(port)], env
    )
    process.wait_until(lambda: accepts_connections(port), "did not listen")
    return process, f"http://127.0.0.1:{port}/event"


def _http_bodies(ctx: Context) -> list[bytes]:
    """The JSON bodies wrk posts, made once per run."""
    if not ctx.http_bodies:
        plan = ctx.plan
        shape = TrafficShape()
        if plan.http_sites is not None:
            shape = shape.spread_over(plan.http_sites)
            ctx.table.notes.append(
                f"HTTP POST /event: the bodies spread evenly over {plan.http_sites:,} sites "
                "(--http-sites), instead of the traffic shape's 4."
            )
        ctx.http_bodies = EventFactory(shape, seed=3).json_bodies(
            max(200, 2 * len(shape.sites)), *recent_window()
        )
    return ctx.http_bodies


def _http_phase(ctx: Context) -> None:
    assert ctx.ingest is not None
    plan = ctx.plan
    script = write_post_script(ctx.cluster.root / "post_event.lua", _http_bodies(ctx))
    browser_script = write_browser_script(
        ctx.cluster.root / "post_event_browser.lua",
        _browser_bodies(_http_bodies(ctx)),
        BROWSER_USER_AGENTS,
        "https://www.example.com",
    )
    raw, raw_url = _start_raw_asgi(ctx)
    service_url = f"http://{ctx.ingest.http}/event"

    def wrk(url: str, seconds: float, lua: Path = script) -> WrkResult:
        return run_wrk(
            url,
            connections=HTTP_CONNECTIONS,
            threads=WRK_THREADS,
            seconds=seconds,
            script=lua,
        )

    groups = ctx.cluster.cpu_groups()
    browsers: list[WrkResult] = []
    try:
        wrk(raw_url, plan.warmup_seconds)
        wrk(service_url, plan.warmup_seconds)
        wrk(service_url, plan.warmup_seconds, browser_script)
        raws: list[WrkResult] = []
        services: list[WrkResult] = []
        for run in range(plan.runs):
            with measuring(groups, "wrk") as cpu:
                raws.append(wrk(raw_url, plan.http_seconds))
            ctx.table.cpu["HTTP, raw ASGI reference"] = cpu.describe()
            # The plain and browser-shaped runs take turns going first, so that neither
            # always meets the stream the other filled.
            for browser_shaped in (False, True) if run % 2 == 0 else (True, False):
                with measuring(groups, "wrk") as cpu:
                    if browser_shaped:
                        browsers.append(wrk(service_url, plan.http_seconds, browser_script))
                    else:
                        services.append(wrk(service_url, plan.http_seconds))
                name = "HTTP POST /event" + ", browser-shaped" * browser_shaped
                ctx.table.cpu[name] = cpu.describe()
            ctx.say(
                f"HTTP run {run + 1}/{plan.runs}: service {services[-1].rate:,.0f}/s "
                f"p99 {services[-1].p99_ms:.1f} ms; browser-shaped {browsers[-1].rate:,.0f}/s; "
                f"raw {raws[-1].rate:,.0f}/s"
            )
    finally:
        ctx.stop(raw)

    def accepted_rate(result: WrkResult) -> float:
        return (result.requests - result.bad_responses) / result.seconds

    bad = sum(r.bad_responses + r.socket_errors for r in services)
    service_rate = median([accepted_rate(r) for r in services])
    ratio = median([accepted_rate(s) / r.rate for s, r in zip(services, raws, strict=True)])
    p99 = median([r.p99_ms for r in services])
    p50 = median([r.p50_ms for r in services])
    measured = rate(service_rate) + (f" ({bad} non-2xx or socket errors)" if bad else "")
    ctx.table.add(
        Row(
            HTTP_FIGURE,
            measured,
            HTTP_TARGET,
            f"{percent(ratio)} of raw",
            verdict(service_rate >= HTTP_RATE and ratio >= HTTP_RATIO and not bad),
        )
    )
    ctx.table.add(
        Row(
            HTTP_P99_FIGURE,
            f"{millis(p99)} (p50 {millis(p50)})",
            HTTP_P99_TARGET,
            "",
            verdict(p99 <= HTTP_P99_MS),
        )
    )
    raw_rate = median([r.rate for r in raws])
    ctx.raw_rate = raw_rate
    raw_p99 = median([r.p99_ms for r in raws])
    ctx.table.add(
        Row(RAW_FIGURE, f"{raw_rate:,.0f} req/s, p99 {millis(raw_p99)}", "", "", REFERENCE)
    )
    ctx.table.record_runs(
        "HTTP service ev/s, p99", [f"{accepted_rate(r):,.0f} / {r.p99_ms:.1f} ms" for r in services]
    )
    ctx.table.record_runs(
        "HTTP raw ASGI req/s, p99", [f"{r.rate:,.0f} / {r.p99_ms:.1f} ms" for r in raws]
    )
    browser_bad = sum(r.bad_responses + r.socket_errors for r in browsers)
    browser_rate = median([accepted_rate(r) for r in browsers])
    browser_ratio = median(
        [accepted_rate(b) / accepted_rate(s) for b, s in zip(browsers, services, strict=True)]
    )
    ctx.table.add(
        Row(
            BROWSER_FIGURE,
            rate(browser_rate)
            + (f" ({browser_bad} non-2xx or socket errors)" if browser_bad else ""),
            BROWSER_TARGET,
            f"{percent(browser_ratio)} of plain",
            verdict(browser_ratio >= BROWSER_RATIO and not browser_bad),
        )
    )
    ctx.table.record_runs(
        "HTTP browser-shaped ev/s, p99",
        [f"{accepted_rate(r):,.0f} / {r.p99_ms:.1f} ms" for r in browsers],
    )


# --- gRPC ------------------------------------------------------------------------------------

GRPC_MODES = ("batch", "stream", "batchstream")


def grpc_figure(plan: Plan, mode: str) -> str:
    return {
        "batch": f"gRPC IngestBatch, {BATCH}-event batches, {plan.grpc_calls} calls in flight",
        "stream": (
            f"gRPC IngestStream, {STREAM_EVENTS}-event streams published in 500-event chunks, "
            f"{GRPC_STREAMS} streams in flight"
        ),
        "batchstream": (
            f"gRPC IngestBatchStream, {BATCH}-event batches, {CONNECTIONS} streams "
            "(up to 8 batches in flight each)"
        ),
    }[mode]


GRPC_TARGET = f"≥ {GRPC_RATE:,.0f} ev/s"


def _grpc_run(
    ctx: Context, mode: str, target: Address | None = None, seconds: float | None = None
) -> LoadReport:
    """A run of the gRPC load generator against `target` (the ingest server's by default),
    of `seconds` (the plan's by default)."""
    assert ctx.ingest is not None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.grpc_load",
            str(target or ctx.ingest.grpc),
            mode,
            f"--seconds={seconds or ctx.plan.grpc_seconds}",
            f"--warmup={ctx.plan.warmup_seconds}",
            f"--concurrency={GRPC_STREAMS if mode == 'stream' else ctx.plan.grpc_calls}",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise BenchError(f"the gRPC load generator failed:\n{done.stderr}")
    return LoadReport(**json.loads(done.stdout))


def _grpc_phase(ctx: Context, mode: str) -> None:
    reports = []
    groups = ctx.cluster.cpu_groups()
    for run in range(ctx.plan.runs):
        with measuring(groups, "gRPC client") as cpu:
            reports.append(_grpc_run(ctx, mode))
        ctx.table.cpu[f"gRPC {mode}"] = cpu.describe()
        ctx.say(f"gRPC {mode} run {run + 1}/{ctx.plan.runs}: {reports[-1].rate:,.0f} ev/s")
        asyncio.run(purge_stream(ctx.cluster.nats.url, ctx.settings))
    failures = sum(r.errors + r.rejected for r in reports)
    measured = median([r.rate for r in reports])
    note = (
        f" ({failures} failed calls or rejected events: {reports[0].first_error})"
        if failures
        else ""
    )
    ctx.table.add(
        Row(
            grpc_figure(ctx.plan, mode),
            rate(measured) + note,
            GRPC_TARGET,
            "",
            verdict(measured >= GRPC_RATE and not failures),
        )
    )
    ctx.table.record_runs(f"gRPC {mode} ev/s", [f"{r.rate:,.0f}" for r in reports])


# --- writer ----------------------------------------------------------------------------------

WRITER_FIGURE = "Writer: pre-filled stream → PostgreSQL, aggregates included"
WRITER_TARGET = f"≥ {WRITER_RATE:,.0f} ev/s and ≥ {percent(WRITER_RATIO)} of plain statement"
PLAIN_FIGURE = (
    f"reference: plain INSERT ... unnest ... ON CONFLICT DO NOTHING RETURNING + one aggregate "
    f"upsert, {REFERENCE_BATCH:,}-row batches"
)


# Writer processes run side by side in the writer phase's scale-out rows (issue #24).
PARALLEL_WRITERS = (2, 3)


def _writer_phase(ctx: Context) -> None:
    assert ctx.ingest is not None
    plan = ctx.plan
    asyncio.run(create_database(ctx.database_url("postgres"), "bench_reference"))
    asyncio.run(migrate_database(ctx.database_url("bench_reference")))
    writers: list[Throughput] = []
    plains: list[Throughput] = []
    for run in range(plan.runs):
        writers.append(
            time_writer(
                ctx.cluster,
                database_url=ctx.database_url("analytics"),
                settings=ctx.settings,
                ingest_grpc=ctx.ingest.grpc,
                events=plan.writer_events,
                extra_env=plan.service_env,
                sites=plan.writer_sites,
            )
        )
        plains.append(
            asyncio.run(
                time_plain_statement(
                    ctx.database_url("bench_reference"),
                    plan.writer_events,
                    seed=100 + run,
                    cpu_groups=ctx.cluster.cpu_groups(),
                )
            )
        )
        for name, result in (("writer", writers[-1]), ("plain statement", plains[-1])):
            if result.cpu is not None:
                ctx.table.cpu[name] = result.cpu.describe()
        ctx.say(
            f"writer run {run + 1}/{plan.runs}: writer {writers[-1].rate:,.0f} ev/s, "
            f"plain statement {plains[-1].rate:,.0f} ev/s"
        )
    writer_rate = median([w.rate for w in writers])
    ratio = median([w.rate / p.rate for w, p in zip(writers, plains, strict=True)])
    ctx.table.add(
        Row(
            WRITER_FIGURE,
            rate(writer_rate) + f" ({plan.writer_events:,} events per run)",
            WRITER_TARGET,
            f"{percent(ratio)} of plain",
            verdict(writer_rate >= WRITER_RATE and ratio >= WRITER_RATIO),
        )
    )
    ctx.table.add(Row(PLAIN_FIGURE, rate(median([p.rate for p in plains])), "", "", REFERENCE))
    batch_size = plan.service_env.get("WRITER_BATCH_SIZE", f"{Settings().writer_batch_size}")
    ctx.table.notes.append(
        f"The writer runs with WRITER_BATCH_SIZE={batch_size} (its setting); the plain "
        f"statement uses the issue's {REFERENCE_BATCH:,}-row batches. The writer's clock starts "
        "at its first fetch and stops when the stream has no pending or unacknowledged message "
        "(it acknowledges after the commit); the events table is then checked to have grown by "
        "exactly the number of events sent."
    )
    ctx.table.record_runs("writer ev/s", [f"{w.rate:,.0f}" for w in writers])
    ctx.table.record_runs("plain statement ev/s", [f"{p.rate:,.0f}" for p in plains])
    _parallel_writers(ctx, writer_rate)


def _parallel_writers(ctx: Context, one_writer_rate: float) -> None:
    """The drain rate of 2 and 3 writer processes sharing the consumer, beside one's."""
    assert ctx.ingest is not None
    plan = ctx.plan
    for count in PARALLEL_WRITERS:
        runs = [
            time_writer(
                ctx.cluster,
                database_url=ctx.database_url("analytics"),
                settings=ctx.settings,
                ingest_grpc=ctx.ingest.grpc,
                events=plan.writer_events,
                extra_env=plan.service_env,
                writers=count,
                sites=plan.writer_sites,
            )
            for _ in range(plan.runs)
        ]
        drain = median([r.rate for r in runs])
        ctx.say(f"{count} writers: {drain:,.0f} ev/s")
        if runs[-1].cpu is not None:
            ctx.table.cpu[f"{count} writers"] = runs[-1].cpu.describe()
        ctx.table.add(
            Row(
                f"Writer drain, {count} writer processes on one consumer",
                rate(drain),
                "",
                f"{drain / one_writer_rate:.2f}x one writer",
                INFO,
            )
        )
        ctx.table.record_runs(f"{count} writers ev/s", [f"{r.rate:,.0f}" for r in runs])


# --- the whole stack -------------------------------------------------------------------------

STACK_HTTP_FIGURE = (
    "Whole stack, every service running, writer draining: HTTP POST /event sustained, "
    f"{HTTP_CONNECTIONS} connections"
)
STACK_HTTP_TARGET = (
    f"≥ {STACK_HTTP_RATE:,.0f} ev/s, p99 ≤ {HTTP_P99_MS:g} ms, ≥ {percent(STACK_HTTP_RATIO)} of "
    "raw ASGI, backlog flat"
)
STACK_GRPC_TARGET = f"≥ {STACK_GRPC_RATE:,.0f} ev/s, backlog flat"


def stack_grpc_figure(plan: Plan) -> str:
    return (
        "Whole stack, every service running, writer draining: gRPC IngestBatch sustained, "
        f"{BATCH}-event batches, {plan.grpc_calls} calls in flight"
    )


def _stack_phase(ctx: Context) -> None:
    """HTTP, then gRPC, against the ingest server with the writer and the report server
    running: for each, a probe as fast as the stack answers, then a run of sustain_seconds at
    the probe's rate if the writer kept up with it, or paced just under what it stored."""
    assert ctx.ingest is not None
    plan, cluster = ctx.plan, ctx.cluster
    database_url = ctx.database_url("analytics")
    asyncio.run(purge_stream(cluster.nats.url, ctx.settings))
    writer = cluster.start_writer(database_url, plan.service_env)
    report = None
    try:
        report = cluster.start_api("report", "report_server", database_url, plan.service_env)
        asyncio.run(wait_for_consumer(cluster.nats.url, ctx.settings))
        _stack_http(ctx, database_url)
        _stack_grpc(ctx, database_url)
    finally:
        if report is not None:
            ctx.stop(report.process)
        ctx.stop(writer)
        asyncio.run(purge_stream(cluster.nats.url, ctx.settings))
    ctx.table.notes.append(
        "Whole stack: the ingest server, the writer and the report server run together on the "
        "same 2 cores as NATS, PostgreSQL and the load generator. Each door is probed for "
        f"{plan.probe_seconds:g} s as fast as the stack answers; if the backlog grew, "
        f"{plan.search_steps} paced runs of {plan.search_seconds:g} s halve the range between "
        "what the writer stored and what was accepted (wrk's per-connection delay, the gRPC "
        "client's schedule), and the sustained run is paced to the highest rate found flat. "
        "The backlog is what a run "
        "accepted and the writer had not stored at its end (from the aggregates the writer "
        f"commits with the events); flat means at most {FLAT_BACKLOG_SECONDS:g} s of events."
    )


def _sustainable_rate(
    ctx: Context, probe: StackRun, paced_run: Callable[[float], StackRun]
) -> float | None:
    """The highest rate whose backlog stays flat: None (unpaced) if the probe's did; else
    found by halving, on a geometric scale, the range between what the writer stored during
    the probe (it kept up with that much while ingestion took all the CPU it could) and what
    was accepted, with short paced runs."""
    if probe.flat:
        return None
    low, high = probe.stored_rate, probe.rate
    for _ in range(ctx.plan.search_steps):
        middle = (low * high) ** 0.5
        trial = paced_run(middle)
        asyncio.run(wait_drained(ctx.cluster.nats.url, ctx.settings))
        ctx.say(
            f"  paced to {middle:,.0f}/s: accepted {trial.rate:,.0f}/s, stored "
            f"{trial.stored_rate:,.0f}/s, backlog {trial.backlog:,} "
            f"({'flat' if trial.flat else 'growing'})"
        )
        if trial.flat:
            low = middle
        else:
            high = middle
    return low


def _stack_http(ctx: Context, database_url: str) -> None:
    assert ctx.ingest is not None
    plan = ctx.plan
    url = f"http://{ctx.ingest.http}/event"
    root = ctx.cluster.root

    def run(seconds: float, script: Path) -> StackRun:
        with measuring(ctx.cluster.cpu_groups(), "wrk") as cpu:
            result = http_run(
                url,
                script,
                seconds=seconds,
                connections=HTTP_CONNECTIONS,
                threads=WRK_THREADS,
                database_url=database_url,
            )
        ctx.table.cpu["Whole stack, HTTP"] = cpu.describe()
        return result

    bodies = _http_bodies(ctx)
    probe = run(plan.probe_seconds, write_post_script(root / "stack.lua", bodies))

    def paced(seconds: float, target: float | None) -> StackRun:
        latency = probe.p50_ms or 0.0
        delay = None if target is None else pace_delay_ms(target, HTTP_CONNECTIONS, latency)
        return run(seconds, write_post_script(root / "stack.lua", bodies, delay))

    drained = asyncio.run(wait_drained(ctx.cluster.nats.url, ctx.settings))
    target = _sustainable_rate(ctx, probe, lambda rate: paced(plan.search_seconds, rate))
    sustained = paced(plan.sustain_seconds, target)
    drain = asyncio.run(wait_drained(ctx.cluster.nats.url, ctx.settings))
    ctx.say(
        f"whole stack HTTP: probe {probe.rate:,.0f}/s (stored {probe.stored_rate:,.0f}/s, "
        f"drained in {drained:.1f}s); sustained {sustained.rate:,.0f}/s p99 "
        f"{sustained.p99_ms:.1f} ms, backlog {sustained.backlog:,}"
    )
    ratio = sustained.rate / ctx.raw_rate if ctx.raw_rate else 0.0
    p99 = sustained.p99_ms or 0.0
    ctx.table.add(
        Row(
            STACK_HTTP_FIGURE,
            f"{rate(sustained.rate)} for {sustained.seconds:.0f} s, p99 {millis(p99)}, backlog "
            f"{sustained.backlog:,} events"
            + (f" ({sustained.failures} non-2xx or socket errors)" if sustained.failures else ""),
            STACK_HTTP_TARGET,
            f"{percent(ratio)} of raw" if ctx.raw_rate else "no raw figure this run",
            verdict(
                sustained.rate >= STACK_HTTP_RATE
                and p99 <= HTTP_P99_MS
                and ratio >= STACK_HTTP_RATIO
                and sustained.flat
                and not sustained.failures
            ),
        )
    )
    _stack_info_row(ctx, "HTTP", probe=probe, target=target, sustained=sustained, drain=drain)


def _stack_grpc(ctx: Context, database_url: str) -> None:
    assert ctx.ingest is not None
    plan = ctx.plan

    def run(seconds: float, paced: float | None) -> StackRun:
        assert ctx.ingest is not None
        with measuring(ctx.cluster.cpu_groups(), "gRPC client") as cpu:
            result = grpc_run(
                ctx.ingest.grpc,
                seconds=seconds,
                calls=plan.grpc_calls,
                rate=paced,
                database_url=database_url,
            )
        ctx.table.cpu["Whole stack, gRPC IngestBatch"] = cpu.describe()
        return result

    probe = run(plan.probe_seconds, None)
    asyncio.run(wait_drained(ctx.cluster.nats.url, ctx.settings))
    target = _sustainable_rate(ctx, probe, lambda rate: run(plan.search_seconds, rate))
    sustained = run(plan.sustain_seconds, target)
    drain = asyncio.run(wait_drained(ctx.cluster.nats.url, ctx.settings))
    ctx.say(
        f"whole stack gRPC: probe {probe.rate:,.0f}/s (stored {probe.stored_rate:,.0f}/s); "
        f"sustained {sustained.rate:,.0f}/s, backlog {sustained.backlog:,}"
    )
    ctx.table.add(
        Row(
            stack_grpc_figure(plan),
            f"{rate(sustained.rate)} for {sustained.seconds:.0f} s, backlog "
            f"{sustained.backlog:,} events"
            + (f" ({sustained.failures} failed calls)" if sustained.failures else ""),
            STACK_GRPC_TARGET,
            "",
            verdict(
                sustained.rate >= STACK_GRPC_RATE and sustained.flat and not sustained.failures
            ),
        )
    )
    _stack_info_row(
        ctx, "gRPC IngestBatch", probe=probe, target=target, sustained=sustained, drain=drain
    )


def _stack_info_row(
    ctx: Context,
    door: str,
    *,
    probe: StackRun,
    target: float | None,
    sustained: StackRun,
    drain: float,
) -> None:
    pace = "unpaced: the writer kept up" if target is None else f"paced to {rate(target)}"
    ctx.table.add(
        Row(
            f"Whole stack, {door}: probe as fast as the stack answers, and the writer meanwhile",
            f"accepted {rate(probe.rate)}, stored {rate(probe.stored_rate)}; sustained run "
            f"{pace}, stored {rate(sustained.stored_rate)}, the rest drained in {drain:.1f} s",
            "",
            "",
            INFO,
        )
    )


# --- rate limits -----------------------------------------------------------------------------

LIMITS_HTTP_FIGURE = "HTTP POST /event with rate limits on (per site and per IP), against off"
LIMITS_GRPC_FIGURE = "gRPC IngestBatch with rate limits on (per site and per IP), against off"
LIMITS_TARGET = f"≥ {percent(LIMITS_RATIO)} of the rate with them off, in the same run"


def _limits_phase(ctx: Context) -> None:
    """Two ingest servers started side by side for this phase, one with its limits on (raised
    out of reach: every event is counted, none refused), one with them off, run by run,
    taking turns at going first; the stream is emptied after each run. Not the ingest server
    of the other phases against a new one: with both limits off, that pair measured the older
    server 20 % slower over HTTP (an A/A run, docs/benchmarks.md)."""
    plan, cluster = ctx.plan, ctx.cluster
    servers: dict[str, ApiService] = {}
    try:
        for name, env in (("on", _ingest_env(plan)), ("off", {**_ingest_env(plan), **LIMITS_OFF})):
            servers[name] = cluster.start_api(
                "ingest", "ingest_server", ctx.database_url("analytics"), env
            )
        _limits_runs(ctx, servers)
    finally:
        for server in servers.values():
            ctx.stop(server.process)


def _limits_runs(ctx: Context, servers: dict[str, ApiService]) -> None:
    plan, cluster = ctx.plan, ctx.cluster
    script = write_post_script(cluster.root / "post_event.lua", _http_bodies(ctx))
    # Short runs, twice as many: the machine's other load changes over seconds, and falls on
    # both servers alike only if they take turns often.
    seconds = max(2.0, plan.http_seconds / 3)
    rounds = 2 * plan.runs
    http: dict[str, list[float]] = {"on": [], "off": []}
    grpc: dict[str, list[float]] = {"on": [], "off": []}
    # The ingest server's CPU an event, in µs, per run: less at the mercy of the machine's
    # other load than the rate is.
    http_cpu: dict[str, list[float]] = {"on": [], "off": []}
    grpc_cpu: dict[str, list[float]] = {"on": [], "off": []}
    trees = {
        name: functools.partial(process_tree, server.process.pid)
        for name, server in servers.items()
    }
    failures = 0
    for server in servers.values():
        run_wrk(
            f"http://{server.http}/event",
            connections=HTTP_CONNECTIONS,
            threads=WRK_THREADS,
            seconds=plan.warmup_seconds,
            script=script,
        )
    for run in range(rounds):
        for name in ("on", "off") if run % 2 == 0 else ("off", "on"):
            with measuring({"ingest": trees[name]}, None) as cpu:
                result = run_wrk(
                    f"http://{servers[name].http}/event",
                    connections=HTTP_CONNECTIONS,
                    threads=WRK_THREADS,
                    seconds=seconds,
                    script=script,
                )
            failures += result.bad_responses + result.socket_errors
            http[name].append((result.requests - result.bad_responses) / result.seconds)
            http_cpu[name].append(cpu.cores["ingest"] / result.rate * 1e6)
            asyncio.run(purge_stream(cluster.nats.url, ctx.settings))
            with measuring({"ingest": trees[name]}, None) as cpu:
                report = _grpc_run(ctx, "batch", servers[name].grpc, seconds)
            failures += report.errors + report.rejected
            grpc[name].append(report.rate)
            # Over the client's warm-up too, at about the same rate.
            grpc_cpu[name].append(cpu.cores["ingest"] / report.rate * 1e6)
            asyncio.run(purge_stream(cluster.nats.url, ctx.settings))
        ctx.say(
            f"limits run {run + 1}/{rounds}: HTTP on {http['on'][-1]:,.0f}/s, off "
            f"{http['off'][-1]:,.0f}/s; gRPC on {grpc['on'][-1]:,.0f}/s, off "
            f"{grpc['off'][-1]:,.0f}/s"
        )
    note = f" ({failures} failed requests or calls)" if failures else ""
    for figure, rates, cpus in (
        (LIMITS_HTTP_FIGURE, http, http_cpu),
        (LIMITS_GRPC_FIGURE, grpc, grpc_cpu),
    ):
        ratio = median([on / off for on, off in zip(rates["on"], rates["off"], strict=True)])
        cost = median([on / off for on, off in zip(cpus["on"], cpus["off"], strict=True)])
        ctx.table.add(
            Row(
                figure,
                f"on {rate(median(rates['on']))}, off {rate(median(rates['off']))}; ingest CPU "
                f"an event on {median(cpus['on']):.2f} µs, off {median(cpus['off']):.2f} µs" + note,
                LIMITS_TARGET,
                f"{percent(ratio)} of off; {percent(cost)} of its CPU an event",
                verdict(ratio >= LIMITS_RATIO and not failures),
            )
        )
    ctx.table.record_runs("limits HTTP on ev/s", [f"{r:,.0f}" for r in http["on"]])
    ctx.table.record_runs("limits HTTP off ev/s", [f"{r:,.0f}" for r in http["off"]])
    ctx.table.record_runs("limits gRPC on ev/s", [f"{r:,.0f}" for r in grpc["on"]])
    ctx.table.record_runs("limits gRPC off ev/s", [f"{r:,.0f}" for r in grpc["off"]])
    for door, cpus in (("HTTP", http_cpu), ("gRPC", grpc_cpu)):
        for name in ("on", "off"):
            ctx.table.record_runs(
                f"limits {door} {name} ingest CPU µs/event", [f"{c:.2f}" for c in cpus[name]]
            )
    ctx.table.notes.append(
        f"Rate limits: {seconds:g} s runs of wrk on POST /event and of the IngestBatch client, "
        "against two ingest servers started side by side for the phase, one with its limits on "
        "at 10^9 events a second (every event counted against its site's and its IP's bucket, "
        "none refused), one with INGEST_RATE_PER_SITE=0 INGEST_RATE_PER_IP=0, taking turns at "
        "going first."
    )


def _ingest_env(plan: Plan) -> dict[str, str]:
    """The ingest server's settings: the bench's, API_PROCESSES, and 127.0.0.1 as a proxy."""
    # The browser-shaped requests come from wrk on 127.0.0.1 as from a proxy.
    return {
        "API_PROCESSES": str(plan.ingest_processes),
        "TRUSTED_PROXIES": "127.0.0.1/32",
        **plan.service_env,
    }


# --- stats -----------------------------------------------------------------------------------

STATS_KINDS = ("one site and day", f"{RANGE_DAYS}-day range", "all time")
STATS_TARGETS = dict(zip(STATS_KINDS, (DAY_P50_MS, RANGE_P50_MS, RANGE_P50_MS), strict=True))
DOORS = ("GetStats", "GET /stats")


def _days(plan: Plan) -> tuple[int, int]:
    """The days the small and the large stats history cover."""
    shape = DatasetShape()
    large = large_shape(shape, plan.stats_small, plan.stats_large, plan.stats_growth)
    return shape.days, large.days


def _short(plan: Plan, events: int, days: int) -> str:
    """A history as the figures name it: its events, and its days when the large one grew by
    days (`2M/365-day`)."""
    if plan.stats_growth == "traffic":
        return count_label(events)
    return f"{count_label(events)}/{days:,}-day"


def _small(plan: Plan) -> str:
    return _short(plan, plan.stats_small, _days(plan)[0])


def _large(plan: Plan) -> str:
    """The large history as the figures name it, e.g. `10M stored events over 1,825 days`."""
    if plan.stats_growth == "traffic":
        return f"{count_label(plan.stats_large)} stored events"
    return f"{count_label(plan.stats_large)} stored events over {_days(plan)[1]:,} days"


def _whole_history(plan: Plan) -> str:
    """What "all time" asks for when the histories cover different days: each one's own."""
    small, large = _days(plan)
    return "" if small == large else f" (each history's whole: {large:,} days, {small} days)"


def _stats_figure(ctx: Context, door: str, kind: str) -> str:
    whole = _whole_history(ctx.plan) if kind == "all time" else ""
    return f"{door} p50, {kind}{whole}, {_large(ctx.plan)}"


def _stats_target(kind: str, plan: Plan) -> str:
    return f"≤ {STATS_TARGETS[kind]:g} ms; ≤ {GROWTH:g}x the {_small(plan)} figure"


def _load_phase(ctx: Context) -> None:
    plan = ctx.plan
    ctx.say(
        f"loading {_small(plan)} then {_large(plan)} "
        f"through EventStore.store ({plan.load_workers} workers, {plan.load_batch:,}-event batches)"
    )
    shape = DatasetShape()
    with measuring(ctx.cluster.cpu_groups(), "loader processes") as cpu:
        ctx.datasets = build_datasets(
            {name: ctx.database_url(name) for name in ("stats_small", "stats_large")},
            ctx.database_url("postgres"),
            shape,
            small=plan.stats_small,
            large=plan.stats_large,
            workers=plan.load_workers,
            batch_size=plan.load_batch,
            growth=plan.stats_growth,
        )
    ctx.table.cpu["loading the stats history"] = cpu.describe()
    small_days, large_days = _days(plan)
    rest = (
        "plus the rest on the same days (traffic growth: every site busier)"
        if small_days == large_days
        else f"plus the rest on the {large_days - small_days:,} days before the small one's, "
        "at its events a day (history growth: the same traffic, received for longer); both "
        "end on the same day"
    )
    ctx.table.notes.append(
        "The stats histories are loaded through writer.decoding.row_of and "
        "writer.store.EventStore.store (the writer's own conversion and statement, aggregates "
        f"included) by {plan.load_workers} processes owning disjoint days; the large one is a "
        f"copy of the small one {rest}. VACUUM (ANALYZE) then does at once what "
        "autovacuum would do to freshly loaded tables. Stats are asked of both for the busiest "
        f"site ({max(share for _, share in shape.traffic.sites):.0%} of the events): a weekday "
        f"in the middle of the small history's {shape.days} days, the last {RANGE_DAYS} days, "
        "and all time."
    )
    for label, url, events in (
        (_small(plan), ctx.datasets.small_url, plan.stats_small),
        (_short(plan, plan.stats_large, large_days), ctx.datasets.large_url, plan.stats_large),
    ):
        raw, aggregates = asyncio.run(disk_bytes(url))
        millions = events / 1_000_000
        ctx.table.add(
            Row(
                f"disk per million stored events, {label} history (pg_total_relation_size)",
                f"{(raw + aggregates) / millions / 2**20:,.0f} MiB: events "
                f"{raw / millions / 2**20:,.0f} MiB, aggregates and the rest "
                f"{aggregates / millions / 2**20:,.0f} MiB ({(raw + aggregates) / events:,.0f} "
                f"bytes per event; {(raw + aggregates) / 2**30:,.1f} GiB in all)",
                "",
                "",
                INFO,
            )
        )
    migrations = asyncio.run(time_migrations(ctx.datasets.large_url))
    ctx.table.add(
        Row(
            f"migrating {count_label(plan.stats_large)} stored events to this release's schema",
            ", ".join(f"{name} {spent:.0f} s" for name, spent in migrations.items()),
            "",
            "",
            INFO,
        )
    )
    loaded = sum(r.events for r in ctx.datasets.loads)
    seconds = ctx.datasets.load_seconds
    ctx.say(f"loaded {loaded:,} events in {seconds:.0f}s")
    ctx.table.add(
        Row(
            f"loading the stats history: {loaded:,} events through writer.store.EventStore.store",
            f"{seconds:.0f} s ({loaded / seconds:,.0f} ev/s, {plan.load_workers} processes)",
            "",
            "",
            INFO,
        )
    )


def _stats_phase(ctx: Context) -> None:
    """Both histories are measured side by side, one report server each: GetStats calls
    alternate between the two servers call by call, `GET /stats` wrk runs second by second.
    The shared machine's load changes over seconds; measured this way it falls on both
    histories alike instead of on whichever was measured second."""
    assert ctx.datasets is not None
    plan = ctx.plan
    shape = DatasetShape()
    site = shape.traffic.busiest_site
    asked: list[Days] = [shape.report_day, range_ending(shape.last_day), None]
    days_of = dict(zip(STATS_KINDS, asked, strict=True))
    sizes = ("small", "large")
    urls = (ctx.datasets.small_url, ctx.datasets.large_url)
    # p50s[(door, kind, size)] = one value per run
    p50s: dict[tuple[str, str, str], list[float]] = {}
    reports: list[ApiService] = []
    try:
        for url in urls:
            reports.append(ctx.cluster.start_api("report", "report_server", url, plan.service_env))
        doors = (
            ("GetStats", grpc_p50s_ms, [report.grpc for report in reports]),
            ("GET /stats", http_p50s_ms, [report.http for report in reports]),
        )
        for run in range(plan.runs):
            for kind, days in days_of.items():
                for door, measure, targets in doors:
                    measured = measure(targets, site, days, plan.stats_seconds)
                    for size, p50 in zip(sizes, measured, strict=True):
                        p50s.setdefault((door, kind, size), []).append(p50)
            ctx.say(
                f"stats, run {run + 1}, {_small(plan)} / {_large(plan)}: "
                + ", ".join(
                    f"{door} {kind} {p50s[(door, kind, 'small')][-1]:.1f}"
                    f"/{p50s[(door, kind, 'large')][-1]:.1f} ms"
                    for door in DOORS
                    for kind in STATS_KINDS
                )
            )
        _report_figures(ctx, [report.grpc for report in reports])
    finally:
        for report in reports:
            ctx.stop(report.process)
    for door in DOORS:
        for kind in STATS_KINDS:
            figure = _stats_figure(ctx, door, kind)
            target = _stats_target(kind, plan)
            large = median(p50s[(door, kind, "large")])
            small = median(p50s[(door, kind, "small")])
            growth = large / small
            ctx.table.add(
                Row(
                    figure,
                    f"{millis(large)} ({_small(plan)}: {millis(small)})",
                    target,
                    f"{growth:.2f}x the {_small(plan)} figure",
                    verdict(large <= STATS_TARGETS[kind] and growth <= GROWTH),
                )
            )
            for size in ("small", "large"):
                ctx.table.record_runs(
                    f"{door} {kind} p50 ms, {size} history",
                    [f"{v:.2f}" for v in p50s[(door, kind, size)]],
                )


def _report_figure_name(ctx: Context, figure: ReportFigure, who: str) -> str:
    whole = _whole_history(ctx.plan) if figure.whole_history else ""
    sites = "over 1,000 sites" if ctx.plan.stats_growth == "traffic" else "and 1,000 sites"
    return f"report: {figure.name}{whole}, {who}, in its zone, {_large(ctx.plan)} {sites}"


def _report_target(figure: ReportFigure, plan: Plan) -> str:
    return (
        f"p50 ≤ {figure.p50_target_ms:g} ms, p99 ≤ {figure.p99_target_ms:g} ms; "
        f"≤ {GROWTH:g}x the {_small(plan)} figure"
    )


def _report_figures(ctx: Context, targets: list[Address]) -> None:
    """Metrics, series and breakdowns of the busiest site and of a typical one, p50 and p99,
    against the small and the large history side by side (see _stats_phase)."""
    plan = ctx.plan
    shape = DatasetShape()
    sites = (
        ("the busiest site", shape.traffic.busiest_site),
        ("a typical site (the 100th)", shape.typical_site),
    )
    for figure in REPORT_FIGURES:
        for who, site in sites:
            # (p50, p99) per run, for the small and the large history
            runs: list[tuple[tuple[float, float], tuple[float, float]]] = []
            for _ in range(plan.runs):
                small, large = report_latencies_ms(
                    targets, figure, site, shape.last_day, plan.stats_seconds
                )
                runs.append(((median(small), _p99(small)), (median(large), _p99(large))))
            small50, small99 = median([r[0][0] for r in runs]), median([r[0][1] for r in runs])
            large50, large99 = median([r[1][0] for r in runs]), median([r[1][1] for r in runs])
            growth = large50 / small50
            ctx.table.add(
                Row(
                    _report_figure_name(ctx, figure, who),
                    f"p50 {millis(large50)}, p99 {millis(large99)} "
                    f"({_small(plan)}: {millis(small50)}, {millis(small99)})",
                    _report_target(figure, plan),
                    f"{growth:.2f}x the {_small(plan)} figure",
                    verdict(
                        large50 <= figure.p50_target_ms
                        and large99 <= figure.p99_target_ms
                        and growth <= GROWTH
                    ),
                )
            )
            ctx.say(f"report {figure.name}, {who}: p50 {large50:.1f} ms, p99 {large99:.1f} ms")


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --- memory ----------------------------------------------------------------------------------


def _memory_rows(ctx: Context) -> None:
    peaks = ctx.cluster.memory.peaks
    for service in SERVICES:
        figure = f"peak RSS (VmHWM) of the {service} process"
        target = f"≤ {RSS_LIMIT_MB:g} MB"
        if service not in peaks:
            if plan_runs_everything(ctx.plan):
                ctx.table.error(figure, target, "the process did not run")
            continue
        mb = peaks[service] * 1.048576  # MiB to MB
        ctx.table.add(Row(figure, f"{mb:.0f} MB", target, "", verdict(mb <= RSS_LIMIT_MB)))


# --- the whole run ---------------------------------------------------------------------------


def source_state() -> str:
    """The commit and whether tracked files differ from it, e.g. `4d6b9b7` or
    `4d6b9b7 with uncommitted changes (<hash of the diff>)`."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    diff = git("diff", "HEAD")
    if not diff:
        return commit
    return f"{commit} with uncommitted changes (diff {hashlib.sha1(diff.encode()).hexdigest()[:8]})"


def _header(
    plan: Plan, started: datetime, wall_seconds: float, source: tuple[str, str]
) -> list[str]:
    at_start, at_end = source
    code = at_start if at_start == at_end else f"{at_start} at the start, {at_end} at the end"
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mode = "quick (development: short runs, small histories)" if plan.quick else "full"
    env = " ".join(f"{k}={v}" for k, v in plan.service_env.items()) or "defaults"
    env += f"; the ingest server with API_PROCESSES={plan.ingest_processes} unless set"
    return [
        f"# Benchmark, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- code: {code}; mode: {mode}; "
        f"medians of {plan.runs} run(s); wall time {wall_seconds / 60:.1f} min",
        f"- machine: {os.cpu_count()} CPUs ({cpu}), shared with the load generators; "
        f"load average at the end {os.getloadavg()[0]:.1f}",
        f"- load generators: wrk ({HTTP_CONNECTIONS} connections, {WRK_THREADS} threads, "
        f"{plan.http_seconds:g} s runs); grpc.aio client ({plan.grpc_calls} IngestBatch "
        f"calls or {GRPC_STREAMS} IngestStream calls in flight over {CONNECTIONS} connections, "
        f"{plan.grpc_seconds:g} s runs); service settings: {env}",
        "- PostgreSQL: embedded, durable (fsync, synchronous_commit, full_page_writes on); "
        "NATS: embedded, JetStream file storage",
    ]


def _ingest_phases(ctx: Context, figures_of: dict[str, list[tuple[str, str]]]) -> None:
    """The phases against the running ingest server, in order."""
    plan = ctx.plan
    if "http" in plan.phases:
        _guarded(ctx, "http", figures_of["http"], lambda: _http_phase(ctx))
        asyncio.run(purge_stream(ctx.cluster.nats.url, ctx.settings))
    if "grpc" in plan.phases:
        for mode in GRPC_MODES:
            _guarded(
                ctx,
                f"grpc {mode}",
                [(grpc_figure(plan, mode), GRPC_TARGET)],
                functools.partial(_grpc_phase, ctx, mode),
            )
    if "writer" in plan.phases:
        _guarded(ctx, "writer", figures_of["writer"], lambda: _writer_phase(ctx))
    if "stack" in plan.phases:
        _guarded(ctx, "stack", figures_of["stack"], lambda: _stack_phase(ctx))
    if "limits" in plan.phases:
        _guarded(ctx, "limits", figures_of["limits"], lambda: _limits_phase(ctx))


def run(plan: Plan) -> int:
    plan = _with(plan, {"service_env": {**RAISED_LIMITS, **plan.service_env}})
    started = datetime.now(UTC)
    source_at_start = source_state()
    say = Progress()
    table = Table()
    figures_of = {
        "http": [
            (HTTP_FIGURE, HTTP_TARGET),
            (HTTP_P99_FIGURE, HTTP_P99_TARGET),
            (BROWSER_FIGURE, BROWSER_TARGET),
        ],
        "grpc": [(grpc_figure(plan, m), GRPC_TARGET) for m in GRPC_MODES],
        "writer": [(WRITER_FIGURE, WRITER_TARGET)],
        "stack": [
            (STACK_HTTP_FIGURE, STACK_HTTP_TARGET),
            (stack_grpc_figure(plan), STACK_GRPC_TARGET),
        ],
        "limits": [(LIMITS_HTTP_FIGURE, LIMITS_TARGET), (LIMITS_GRPC_FIGURE, LIMITS_TARGET)],
    }
    say(f"starting NATS and PostgreSQL ({'quick' if plan.quick else 'full'} plan)")
    table.notes.append(
        "The ingest figures are taken with the writer stopped (the stream is emptied after each "
        "run), so that they measure the ingest server and JetStream, not what a busy writer "
        "and PostgreSQL leave of the 2 cores; every service is its own process, as deployed."
    )
    with Cluster() as cluster:
        ctx = Context(plan, cluster, table, say)

        def setup() -> None:
            asyncio.run(create_database(ctx.database_url("postgres"), "analytics"))
            # The writer starts once to migrate and create its consumer, then waits its turn.
            writer = cluster.start_writer(ctx.database_url("analytics"), plan.service_env)
            try:
                asyncio.run(wait_for_consumer(cluster.nats.url, ctx.settings))
            finally:
                cluster.stop(writer)
            ctx.ingest = cluster.start_api(
                "ingest", "ingest_server", ctx.database_url("analytics"), _ingest_env(plan)
            )
            say(f"ingest server up: gRPC {ctx.ingest.grpc}, HTTP {ctx.ingest.http}")

        ingest_figures = [
            f
            for p in ("http", "grpc", "writer", "stack", "limits")
            if p in plan.phases
            for f in figures_of[p]
        ]
        _guarded(ctx, "setup", ingest_figures, setup)
        if ctx.ingest is not None:
            _ingest_phases(ctx, figures_of)
            ctx.stop(ctx.ingest.process)
        if "stats" in plan.phases:
            stats_figures = [
                (_stats_figure(ctx, door, kind), _stats_target(kind, plan))
                for door in DOORS
                for kind in STATS_KINDS
            ]
            _guarded(ctx, "load", stats_figures, lambda: _load_phase(ctx))
            if ctx.datasets is not None:
                _guarded(ctx, "stats", stats_figures, lambda: _stats_phase(ctx))
        cluster.save_logs(LOGS_DIR)
    _memory_rows(ctx)
    wall = time.perf_counter() - say.started
    if plan_runs_everything(plan):
        limit_ok = wall <= TIME_LIMIT_SECONDS
        table.add(
            Row(
                "the whole benchmark, one command",
                f"{wall / 60:.1f} min",
                f"≤ {TIME_LIMIT_SECONDS // 60} min",
                "",
                INFO if plan.quick else verdict(limit_ok),
            )
        )
    source_at_end = source_state()
    if source_at_end != source_at_start:
        table.notes.insert(
            0,
            "The code changed during the run: processes started at different times ran "
            "different code. Run again on a quiet tree before quoting these figures.",
        )
    text = table.render(_header(plan, started, wall, (source_at_start, source_at_end)))
    print(text)
    path = write_results(text, started)
    say(f"table written to {path.relative_to(ROOT)}; logs in {LOGS_DIR.relative_to(ROOT)}")
    if any(row.verdict == ERROR for row in table.rows):
        return 2
    return 1 if plan.strict and table.failed else 0
