"""A three-node NATS cluster with the stream on three replicas, two ingest servers and two
writers: killing the stream's leader and a writer while events flow loses and doubles nothing
that was accepted, and a cluster still starting is waited for."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import grpc
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest

from core.settings import Settings
from core.stream import EventStream, ensure_stream
from devstack.embedded import ClusterMembership, EmbeddedNats, free_port
from ingest_server.service import ingest_doors
from runtime.serve import serving
from tests.support.clients import GrpcClients, grpc_clients
from tests.support.env import ServiceStarter
from tests.support.jetstream import jetstream
from tests.support.waiting import eventually

BATCHES = 60
BATCH_EVENTS = 100


def cluster_nodes(root: Path) -> list[EmbeddedNats]:
    route_ports = [free_port() for _ in range(3)]
    return [
        EmbeddedNats(
            root / f"n{i}",
            ClusterMembership(
                server_name=f"n{i}",
                cluster_name="analytics",
                route_port=port,
                peer_route_ports=tuple(p for p in route_ports if p != port),
            ),
        )
        for i, port in enumerate(route_ports)
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[EmbeddedNats]]:
    nodes = cluster_nodes(tmp_path)
    with contextlib.ExitStack() as running:
        for node in nodes:
            running.enter_context(node)
        yield nodes


async def test_a_replicated_stream_waits_for_enough_servers_of_a_starting_cluster(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = cluster_nodes(tmp_path)
    stream = EventStream.from_settings(replace(settings, stream_replicas=3))
    with first, second:
        async with jetstream(first.url) as js:
            creating = asyncio.create_task(ensure_stream(js, stream))
            await eventually(lambda: asyncio.sleep(0, "peers for placement" in caplog.text), True)
            with third:
                await asyncio.wait_for(creating, 60)
                info = await js.stream_info(stream.name)

    assert info.config.num_replicas == 3


def event(number: int) -> Event:
    result = Event(
        event_id=f"e{number}", site_id="site-1", event_type="page_view", path=f"/p{number % 7}"
    )
    result.timestamp.GetCurrentTime()
    return result


async def send_until_accepted(rpc: GrpcClients, batch: IngestBatchRequest) -> None:
    """What a client should do: resend the same events until they are accepted."""
    while True:
        try:
            response = await rpc.ingest.IngestBatch(batch, timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            await asyncio.sleep(0.2)
            continue
        assert response.accepted_count == len(batch.events)
        return


async def test_killing_the_stream_leader_and_a_writer_loses_and_doubles_no_accepted_event(
    settings: Settings,
    cluster: list[EmbeddedNats],
    db: asyncpg.Connection,
    services: ServiceStarter,
) -> None:
    # The topology of docker-compose's cluster profile: three NATS nodes with the stream on
    # three replicas, two ingest servers, two writers on one durable consumer.
    settings = replace(settings, nats_url=",".join(node.url for node in cluster), stream_replicas=3)
    total = BATCHES * BATCH_EVENTS
    batches = asyncio.Queue[IngestBatchRequest]()
    for number in range(BATCHES):
        batches.put_nowait(
            IngestBatchRequest(
                events=[event(number * BATCH_EVENTS + i) for i in range(BATCH_EVENTS)]
            )
        )
    accepted = 0

    async def produce(rpc: GrpcClients) -> None:
        nonlocal accepted
        while not batches.empty():
            batch = batches.get_nowait()
            await send_until_accepted(rpc, batch)
            accepted += len(batch.events)

    async with (
        serving(settings, [ingest_doors]) as first_api,
        serving(settings, [ingest_doors]) as second_api,
        grpc_clients(first_api.grpc) as first,
        grpc_clients(second_api.grpc) as second,
    ):
        writers = [services("writer", settings) for _ in range(2)]
        producers = [asyncio.create_task(produce(rpc)) for rpc in (first, second) * 2]
        await eventually(lambda: _at_least(accepted, total // 3), True)
        leader = await _stream_leader(cluster[0].url, settings.stream_name)
        next(node for node in cluster if _name(node) == leader).kill()
        await eventually(lambda: _at_least(accepted, 2 * total // 3), True, within=60)
        writers.pop(0).kill()
        await asyncio.gather(*producers)
        await eventually(lambda: _count(db), total, within=60)
        [survivor] = writers

    rows = await db.fetch("SELECT path, views FROM daily_path_views")
    assert {row["path"]: row["views"] for row in rows} == Counter(
        f"/p{n % 7}" for n in range(total)
    )
    assert survivor.stop() == 0


def _name(node: EmbeddedNats) -> str:
    assert node.cluster is not None
    return node.cluster.server_name


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum


async def _stream_leader(url: str, stream: str) -> str:
    async with jetstream(url) as js:
        info = await js.stream_info(stream)
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return info.cluster.leader


async def _count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM events")
    return count
