"""What clients see, and what is kept, when NATS or PostgreSQL fail or the stream fills up."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from analytics.internal.v1.stream_pb2 import EventBatch
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestRequest
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from core.migrator import migrate
from core.settings import Settings
from core.stream import EventStream
from devstack.embedded import EmbeddedNats, EmbeddedPostgres
from ingest_server.service import ingest_doors
from runtime.serve import ApiServer, serving
from tests.support.clients import grpc_clients, retry_delay
from tests.support.jetstream import jetstream
from tests.support.waiting import eventually
from writer.service import running_writer

EVENT = {"site_id": "site-1", "event_type": "page_view", "path": "/home"}
EVENT_MESSAGE = Event(site_id="site-1", event_type="page_view", path="/home")


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A NATS server this test may stop and start."""
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL this test may stop and start."""
    root = Path(tempfile.mkdtemp(prefix="analytics-pg-"))
    root.chmod(0o755)
    with EmbeddedPostgres(root / "postgres", durable=False) as server:
        yield server
    shutil.rmtree(root, ignore_errors=True)


async def post_status(http: httpx.AsyncClient) -> int:
    return (await http.post("/event", json=EVENT)).status_code


class TestNatsOutage:
    @pytest.fixture
    def outage_settings(self, settings: Settings, own_nats: EmbeddedNats) -> Settings:
        return replace(settings, nats_url=own_nats.url, publish_timeout=2.0)

    @pytest.fixture
    async def api(self, outage_settings: Settings) -> AsyncIterator[ApiServer]:
        async with serving(outage_settings, [ingest_doors]) as addresses:
            yield addresses

    @pytest.fixture
    async def http(self, api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
        # A hang would exceed this bound and fail the test.
        async with httpx.AsyncClient(base_url=f"http://{api.http}", timeout=3.0) as client:
            yield client

    async def test_http_answers_503_with_retry_after_while_nats_is_down(
        self, http: httpx.AsyncClient, own_nats: EmbeddedNats
    ) -> None:
        own_nats.stop()
        await eventually(lambda: post_status(http), 503)

        response = await http.post("/event", json=EVENT)

        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "error": "unavailable",
            "message": "the event stream is unreachable",
        }

    async def test_grpc_answers_unavailable_with_retry_info_while_nats_is_down(
        self, api: ApiServer, http: httpx.AsyncClient, own_nats: EmbeddedNats
    ) -> None:
        own_nats.stop()
        await eventually(lambda: post_status(http), 503)

        async with grpc_clients(api.grpc) as rpc:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await rpc.ingest.Ingest(IngestRequest(event=EVENT_MESSAGE), timeout=3.0)

        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert retry_delay(caught.value) == 1

    async def test_ingestion_recovers_by_itself_when_nats_returns_and_kept_what_it_accepted(
        self,
        http: httpx.AsyncClient,
        own_nats: EmbeddedNats,
        outage_settings: Settings,
        js: JetStreamContext,
    ) -> None:
        assert await post_status(http) == 202
        own_nats.stop()
        await eventually(lambda: post_status(http), 503)

        own_nats.start()

        await eventually(lambda: post_status(http), 202)
        async with jetstream(own_nats.url) as own_js:
            info = await own_js.stream_info(outage_settings.stream_name)
        assert info.state.messages == 2


class TestStreamFull:
    @pytest.fixture
    def full_settings(self, settings: Settings) -> Settings:
        return replace(settings, stream_max_msgs=3)

    @pytest.fixture
    async def api(self, full_settings: Settings) -> AsyncIterator[ApiServer]:
        async with serving(full_settings, [ingest_doors]) as addresses:
            yield addresses

    @pytest.fixture
    async def http(self, api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=f"http://{api.http}", timeout=5.0) as client:
            for _ in range(3):
                assert await post_status(client) == 202
            yield client

    async def test_http_answers_429_with_retry_after_when_the_stream_is_full(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post("/event", json=EVENT)

        assert response.status_code == 429
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "error": "resource_exhausted",
            "message": "the event stream is full; retry later",
        }

    async def test_grpc_answers_resource_exhausted_when_the_stream_is_full(
        self, api: ApiServer, http: httpx.AsyncClient
    ) -> None:
        async with grpc_clients(api.grpc) as rpc:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await rpc.ingest.Ingest(IngestRequest(event=EVENT_MESSAGE))

        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay(caught.value) == 5

    async def test_many_refused_messages_are_logged_in_one_warning(
        self, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="ingest_server.publisher")

        statuses = [await post_status(http) for _ in range(20)]

        assert statuses == [429] * 20
        assert [record.getMessage() for record in caplog.records] == [
            "JetStream refused a message: "
            "{'code': 503, 'err_code': 10077, 'description': 'maximum messages exceeded'}"
        ]

    async def test_the_stream_accepts_again_once_the_writer_drains_it(
        self, http: httpx.AsyncClient, full_settings: Settings, db: asyncpg.Connection
    ) -> None:
        async with running_writer(full_settings):
            await eventually(lambda: post_status(http), 202)


async def test_ingestion_keeps_accepting_while_postgres_is_down_and_the_writer_catches_up(
    settings: Settings, own_postgres: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(settings, database_url=own_postgres.url())
    async with asyncpg.create_pool(own_postgres.url(), min_size=1, max_size=1) as pool:
        await migrate(pool)
    accepted: list[str] = []

    async def produce(http: httpx.AsyncClient, until: asyncio.Event) -> None:
        number = 0
        while not until.is_set():
            event = {**EVENT, "path": f"/p{number % 5}", "event_id": f"e{number}"}
            response = await http.post("/event", json=event)
            assert response.status_code == 202, response.text
            accepted.append(event["path"])
            number += 1
            await asyncio.sleep(0.005)

    caplog.set_level(logging.WARNING, logger="writer.consumer")
    async with (
        serving(settings, [ingest_doors]) as api,
        running_writer(settings),
        httpx.AsyncClient(base_url=f"http://{api.http}") as http,
    ):
        done = asyncio.Event()
        producing = asyncio.create_task(produce(http, done))
        await eventually(lambda: _stored(own_postgres), True, within=10)
        own_postgres.stop()
        await eventually(lambda: _retrying(caplog), True, within=30)
        await asyncio.sleep(1.0)  # keep accepting while PostgreSQL is down
        own_postgres.start()
        done.set()
        await producing

        await eventually(lambda: _count(own_postgres), len(accepted), within=30)
    paths = await _path_views(own_postgres)
    assert paths == {path: accepted.count(path) for path in set(accepted)}


async def _stored(server: EmbeddedPostgres) -> bool:
    return await _count(server) > 0


async def _retrying(caplog: pytest.LogCaptureFixture) -> bool:
    return any("retrying in" in record.getMessage() for record in caplog.records)


async def _count(server: EmbeddedPostgres) -> int:
    connection = await asyncpg.connect(server.url())
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM events")
        return count
    finally:
        await connection.close()


async def _path_views(server: EmbeddedPostgres) -> dict[str, Any]:
    connection = await asyncpg.connect(server.url())
    try:
        rows = await connection.fetch("SELECT path, views FROM daily_path_views")
        return {row["path"]: row["views"] for row in rows}
    finally:
        await connection.close()


async def test_a_writer_stopped_while_postgres_is_down_leaves_its_batches_to_the_next_writer(
    settings: Settings,
    own_postgres: EmbeddedPostgres,
    js: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = replace(
        settings, database_url=own_postgres.url(), writer_batch_size=20, writer_concurrency=3
    )
    stream = EventStream.from_settings(settings)
    total = 400
    caplog.set_level(logging.WARNING, logger="writer.consumer")
    async with running_writer(settings):
        own_postgres.stop()
        for number in range(0, total, 10):
            batch = EventBatch(events=[stored_event(f"e{n}") for n in range(number, number + 10)])
            batch.received_at.GetCurrentTime()
            await js.publish(stream.subject, batch.SerializeToString())
        await eventually(lambda: _retrying(caplog), True, within=30)
    # Stopped with batches unstored: they are handed back, or redelivered after the ack wait.
    own_postgres.start()
    async with running_writer(settings):
        await eventually(lambda: _count(own_postgres), total, within=30)

    assert await _path_views(own_postgres) == {"/home": total}


def stored_event(event_id: str) -> Event:
    return Event(
        event_id=event_id,
        site_id="site-1",
        event_type="page_view",
        path="/home",
        timestamp=Timestamp(seconds=1_763_114_400),
    )


async def test_batches_held_through_an_outage_longer_than_the_ack_wait_are_not_redelivered(
    settings: Settings,
    own_postgres: EmbeddedPostgres,
    js: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One loop holds the batch it retries and the batch it fetched after it, for three times
    # WRITER_ACK_WAIT: JetStream must hear that the writer still works on both, or it would
    # redeliver them to whoever pulls next (here the test, as another writer would).
    settings = replace(
        settings,
        database_url=own_postgres.url(),
        writer_batch_size=10,
        writer_concurrency=1,
        writer_ack_wait=2.0,
    )
    stream = EventStream.from_settings(settings)
    caplog.set_level(logging.WARNING, logger="writer.consumer")
    async with running_writer(settings):
        own_postgres.stop()
        for number in (0, 10):
            batch = EventBatch(events=[stored_event(f"e{n}") for n in range(number, number + 10)])
            batch.received_at.GetCurrentTime()
            await js.publish(stream.subject, batch.SerializeToString())
        await eventually(lambda: _retrying(caplog), True, within=30)
        await asyncio.sleep(3 * settings.writer_ack_wait)
        other_writer = await js.pull_subscribe_bind(settings.writer_durable, stream.name)
        with pytest.raises(TimeoutError):
            await other_writer.fetch(2, timeout=1.0)
        own_postgres.start()
        await eventually(lambda: _count(own_postgres), 20, within=30)

        consumer = await js.consumer_info(stream.name, settings.writer_durable)
    assert consumer.num_redelivered == 0
