"""Fixtures: one real NATS server and one real PostgreSQL cluster per test session, started
from the pip packages on free ports in a temporary directory; each test gets a stream, a
subject prefix and a database of its own on them."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from core.migrator import migrate
from core.settings import Address, Settings
from core.stream import EventStream
from devstack.api import SERVICES
from devstack.embedded import EmbeddedNats, EmbeddedPostgres
from runtime.processes import ChildProcess
from runtime.serve import ApiServer, serving
from tests.support.clients import GrpcClients, grpc_clients
from tests.support.env import ServiceStarter, start_service
from tests.support.jetstream import jetstream
from writer.service import RunningWriter, running_writer


@pytest.fixture(scope="session")
def servers_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="analytics-tests-"))
    root.chmod(0o755)  # PostgreSQL may run as another user (when we are root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server(servers_root: Path) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(servers_root / "nats") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(servers_root: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(servers_root / "postgres", durable=False) as server:
        yield server


@pytest.fixture
async def database_url(postgres_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres_server.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server.url(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def settings(
    nats_server: EmbeddedNats, database_url: str, tmp_path: Path
) -> AsyncIterator[Settings]:
    """Settings for one test: its own database, stream and subjects, free ports."""
    tag = uuid.uuid4().hex[:12]
    settings = Settings(
        nats_url=nats_server.url,
        database_url=database_url,
        grpc_listen=Address("127.0.0.1", 0),
        http_listen=Address("127.0.0.1", 0),
        stream_name=f"EVENTS_{tag}",
        subject_prefix=f"test.{tag}.events",
        stream_max_bytes=64 * 1024 * 1024,
        dead_letter_stream=f"DEAD_{tag}",
        dead_letter_subject=f"test.{tag}.dead_letters",
        writer_batch_size=200,
        writer_ack_wait=2.0,
        publish_timeout=2.0,
        data_dir=tmp_path,
        sites_bucket=f"SITES_{tag}",
        visitor_keys_bucket=f"KEYS_{tag}",
        filtered_traffic_interval=0.2,
        credentials_bucket=f"CREDS_{tag}",
        # Open, as the development stack is (tests of access close them: tests/test_access.py).
        ingest_open=True,
        reports_open=True,
        admin_open=True,
        keyless_backfill_days=36500,
    )
    yield settings
    async with jetstream(nats_server.url) as context:
        buckets = (
            f"KV_{settings.sites_bucket}",
            f"KV_{settings.visitor_keys_bucket}",
            f"KV_{settings.credentials_bucket}",
        )
        for name in (settings.stream_name, settings.dead_letter_stream, *buckets):
            with contextlib.suppress(NotFoundError):  # unless the test never created it
                await context.delete_stream(name)


@pytest.fixture
def stream(settings: Settings) -> EventStream:
    return EventStream.from_settings(settings)


@pytest.fixture
async def migrated(settings: Settings) -> None:
    """The test's database at the schema's latest version, as the writer leaves it."""
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await migrate(pool)


@pytest.fixture
async def api(settings: Settings, migrated: None) -> AsyncIterator[ApiServer]:
    """The ingest and report services, gRPC and HTTP, in this process."""
    async with serving(settings, SERVICES) as addresses:
        yield addresses


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[RunningWriter]:
    async with running_writer(settings) as running:
        yield running


@pytest.fixture
async def http(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{api.http}", timeout=10) as client:
        yield client


@pytest.fixture
async def rpc(api: ApiServer) -> AsyncIterator[GrpcClients]:
    async with grpc_clients(api.grpc) as clients:
        yield clients


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the test's database, its schema not yet migrated."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as pool:
        yield pool


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port of 127.0.0.1 that another server listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other_server:
        other_server.bind(("127.0.0.1", 0))
        other_server.listen()
        yield other_server.getsockname()[1]


@pytest.fixture
def services() -> Iterator[ServiceStarter]:
    """Starts `python -m <module>` processes, killed at the end of the test if still running."""
    started: list[ChildProcess] = []

    def start(module: str, settings: Settings) -> ChildProcess:
        process = start_service(module, settings)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
async def db(settings: Settings, migrated: None) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, its schema migrated."""
    connection = await asyncpg.connect(settings.database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def js(nats_server: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    async with jetstream(nats_server.url) as context:
        yield context
