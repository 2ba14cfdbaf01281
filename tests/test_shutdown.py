"""SIGTERM stops every service gracefully: no new work, in-flight work finished, and nothing
accepted lost."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import httpx
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest
from nats.js import JetStreamContext

from core.settings import Address, Settings
from core.stream import EventStream
from devstack.embedded import accepts_connections, free_port
from runtime.serve import ApiServer
from tests.support.clients import grpc_clients
from tests.support.env import ServiceStarter
from tests.support.jetstream import events_in
from tests.support.waiting import eventually
from writer.service import running_writer


def event(number: int) -> Event:
    result = Event(
        event_id=f"e{number}", site_id="site-1", event_type="page_view", path=f"/p{number % 9}"
    )
    result.timestamp.GetCurrentTime()
    return result


async def stored_ids(db: asyncpg.Connection) -> set[str]:
    return {row["event_id"] for row in await db.fetch("SELECT event_id FROM events")}


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_writer_stopped_by_sigterm_stores_and_acknowledges_its_batches_first(
    concurrency: int,
    settings: Settings,
    api: ApiServer,
    services: ServiceStarter,
    js: JetStreamContext,
    stream: EventStream,
    db: asyncpg.Connection,
) -> None:
    total = 20_000
    async with grpc_clients(api.grpc) as rpc:
        for start in range(0, total, 1000):
            await rpc.ingest.IngestBatch(
                IngestBatchRequest(events=[event(n) for n in range(start, start + 1000)])
            )
    writer = services("writer", replace(settings, writer_concurrency=concurrency))
    await eventually(lambda: _some_stored(db), True)

    status = writer.stop()  # SIGTERM, then wait

    consumer = await js.consumer_info(stream.name, settings.writer_durable)
    left = len(await events_in(js, stream.name))
    assert status == 0
    assert consumer.num_ack_pending == 0
    assert len(await stored_ids(db)) + left == total
    assert 0 < left < total


async def test_an_api_stopped_by_sigterm_loses_nothing_it_accepted(
    settings: Settings, services: ServiceStarter, db: asyncpg.Connection
) -> None:
    http_port = free_port()
    settings = replace(
        settings,
        http_listen=Address("127.0.0.1", http_port),
        grpc_listen=Address("127.0.0.1", free_port()),
    )
    api = services("devstack.api", settings)
    await eventually(lambda: _listening(http_port), True)
    accepted: set[str] = set()

    async def client(number: int, http: httpx.AsyncClient) -> None:
        for attempt in range(10_000):
            event_id = f"c{number}-{attempt}"
            body = {"site_id": "s", "event_type": "page_view", "path": "/", "event_id": event_id}
            try:
                response = await http.post("/event", json=body)
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 202:
                accepted.add(event_id)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
        clients = [asyncio.create_task(client(n, http)) for n in range(16)]
        await eventually(lambda: _count(accepted), True, within=10)
        stopping = asyncio.create_task(asyncio.to_thread(api.stop))  # SIGTERM, then wait
        await asyncio.gather(*clients)
        status = await stopping

    assert status == 0
    async with running_writer(settings):
        await eventually(lambda: _all_stored(db, accepted), True)


async def _some_stored(db: asyncpg.Connection) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM events"))


async def _listening(port: int) -> bool:
    return accepts_connections(port)


async def _count(accepted: set[str]) -> bool:
    return len(accepted) >= 200


async def _all_stored(db: asyncpg.Connection, accepted: set[str]) -> bool:
    return accepted <= await stored_ids(db)
