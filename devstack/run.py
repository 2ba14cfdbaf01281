"""`make run`: the whole stack in one terminal.

Starts an embedded NATS server and PostgreSQL cluster (data kept in DATA_DIR across restarts)
unless NATS_URL / DATABASE_URL point elsewhere, then the writer and the API: one process per core
(API_PROCESSES, as `make bench` measured best), each serving both gRPC services and the HTTP
shim. Ctrl-C stops everything in order: the API first (in-flight
requests finish), then the writer (its batch in hand is stored), then the servers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType

from core.settings import ConfigError, Settings, redacted
from devstack.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedServerError,
    accepts_connections,
    free_port,
)
from report_server.credentials import bootstrap_admin_token
from runtime.logs import configure_logging
from runtime.ports import listen_refusal
from runtime.processes import ChildProcess, ProcessExited
from runtime.tls import http_scheme

API_START_TIMEOUT_SECONDS = 60.0
# The development stack is open where production is private (README "Access"): the seeds'
# requests, without a key or token, work unchanged. A variable set in the environment wins.
OPEN_FOR_DEVELOPMENT = {"INGEST_OPEN": "1", "REPORTS_OPEN": "1", "KEYLESS_BACKFILL_DAYS": "36500"}
# The most API_PROCESSES takes (core.settings).
MAX_API_PROCESSES = 64
# The name of the admin token each start makes (revoking the one of the start before).
ADMIN_TOKEN_NAME = "make run"


class _Stop(Exception):
    pass


def main() -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        sys.exit(f"analytics-run: configuration error: {error}")
    if refusal := listen_refusal(settings):
        sys.exit(f"analytics-run: {refusal}")
    configure_logging(settings.log_level, settings.log_format)
    _signals.install()
    try:
        with ExitStack() as running:
            env, origins = _start_servers(settings, running)
            # The writer's own routes, on a port of their own (it has no HTTP door).
            env.setdefault("WRITER_HTTP_LISTEN", f"127.0.0.1:{free_port()}")
            for name, value in {**OPEN_FOR_DEVELOPMENT, **benchmarked(os.cpu_count())}.items():
                env.setdefault(name, value)
            children = []
            for name, module in (("writer", "writer"), ("API", "devstack.api")):
                child = ChildProcess(name, signal.SIGTERM)
                with _signals.deferred():
                    child.spawn([sys.executable, "-m", module], env=env)
                    running.callback(child.stop)  # stopped in reverse order: the API first
                children.append(child)
            _wait_for_api(settings, children)
            admin = asyncio.run(bootstrap_admin_token(Settings.from_env(env), ADMIN_TOKEN_NAME))
            _print_banner(settings, env, origins, admin.secret)
            while all(child.running for child in children):
                time.sleep(0.2)
            failed = next(child for child in children if not child.running)
            sys.exit(f"analytics-run: the {failed.name} process exited; stopping everything")
    except _Stop:
        print("\nanalytics-run: stopped", file=sys.stderr)
    except (EmbeddedServerError, ProcessExited) as error:
        sys.exit(f"analytics-run: {error}")


def benchmarked(cpus: int | None) -> dict[str, str]:
    """The settings `make bench`'s whole-stack phase measured best, for a machine of `cpus`
    cores (None: unknown): one API process per core, since one process's core is what limits
    HTTP ingestion (docs/benchmarks.md, "Whole stack"). A variable set in the environment
    wins."""
    return {"API_PROCESSES": str(min(MAX_API_PROCESSES, cpus or 1))}


def _start_servers(settings: Settings, running: ExitStack) -> tuple[dict[str, str], dict[str, str]]:
    """Start the embedded servers that are not configured away; the children's environment,
    and where each server comes from, for the banner."""
    env = dict(os.environ)
    origins = {"NATS_URL": "external", "DATABASE_URL": "external"}
    if settings.nats_url is None:
        nats = EmbeddedNats(settings.data_dir / "nats")
        with _signals.deferred():
            nats.start()
            running.callback(nats.stop)
        env["NATS_URL"] = nats.url
        origins["NATS_URL"] = f"embedded, data in {nats.root}"
    if settings.database_url is None:
        postgres = EmbeddedPostgres(settings.data_dir / "postgres")
        with _signals.deferred():
            postgres.start()
            running.callback(postgres.stop)
        env["DATABASE_URL"] = postgres.url()
        origins["DATABASE_URL"] = f"embedded, data in {_postgres_data(postgres)}"
    return env, origins


def _postgres_data(postgres: EmbeddedPostgres) -> str:
    """Its directory, and where its cluster lies when that is elsewhere (as root, when the
    user PostgreSQL runs as cannot reach the directory)."""
    if postgres.pgdata.is_relative_to(postgres.root.resolve()):
        return str(postgres.root)
    return f"{postgres.pgdata} (linked from {postgres.root / 'pgdata'})"


class _StopSignals:
    """Ctrl-C and SIGTERM stop us by raising _Stop, except while something starts and its
    cleanup is registered (`deferred()`): then they take effect right after, so that stopping
    never leaves a started server behind."""

    def __init__(self) -> None:
        self._deferring = False
        self._received = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._received:
            self._stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._received = True
        if not self._deferring:
            self._stop()

    def _stop(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Stop


_signals = _StopSignals()


def _wait_for_api(settings: Settings, children: list[ChildProcess]) -> None:
    deadline = time.monotonic() + API_START_TIMEOUT_SECONDS
    for address in (settings.http_listen, settings.grpc_listen):
        while not accepts_connections(address.port, address.host):
            if not all(child.running for child in children) or time.monotonic() > deadline:
                sys.exit(f"analytics-run: the API did not start listening on {address}")
            time.sleep(0.05)


def _print_banner(
    settings: Settings, env: dict[str, str], origins: dict[str, str], admin_token: str
) -> None:
    print(
        "\nThe analytics stack is running.\n"
        f"  HTTP      {http_scheme(settings)}://{settings.http_listen}   "
        "POST /event, POST /events, GET /stats, /sites; API reference at /docs\n"
        f"  Dashboard {http_scheme(settings)}://{settings.http_listen}/   "
        "sites, reports, live events (a browser)\n"
        f"  gRPC      {settings.grpc_listen}   "
        "analytics.v1.IngestService, ReportService, SiteService, AdminService\n"
        f"  API       {env['API_PROCESSES']} processes serving both ports (API_PROCESSES)\n"
        f"  Writer    {http_scheme(settings)}://{env['WRITER_HTTP_LISTEN']}   "
        "/metrics, /healthz, /readyz\n"
        f"  NATS      {redacted(env['NATS_URL'])}   {origins['NATS_URL']}\n"
        f"  Postgres  {redacted(env['DATABASE_URL'])}   {origins['DATABASE_URL']}\n"
        f"  Access    INGEST_OPEN={env['INGEST_OPEN']} REPORTS_OPEN={env['REPORTS_OPEN']} "
        f"KEYLESS_BACKFILL_DAYS={env['KEYLESS_BACKFILL_DAYS']}; sites, keys and tokens "
        "take the admin token\n"
        f"  Admin     export ANALYTICS_TOKEN={admin_token}\n"
        "            (a new one each start; analytics-admin and analytics-sites read it)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
